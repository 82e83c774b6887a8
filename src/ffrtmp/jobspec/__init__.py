"""Typed, validated job specs: the one contract the master and the agent share.

``parse`` turns untrusted JSON into a frozen ``JobSpec`` of typed sources (``FileSource``,
``UrlSource``, ``RemoteFile``, ``GeneratedSource``) and sinks (``FileSink``, ``HlsSink``, ``PushSink``) with
typed encoding settings, or raises ``SpecError`` naming the field. The master stores
``to_dict()``; the agent reads the types and never parses a URL or a setting again.
"""

from __future__ import annotations

from ffrtmp.jobspec.encoding import AudioSettings, VideoSettings
from ffrtmp.jobspec.limits import LIMIT_FIELDS as _LIMIT_FIELDS
from ffrtmp.jobspec.limits import Limits
from ffrtmp.jobspec.numbers import MAX_DURATION_S, Bitrate, format_number
from ffrtmp.jobspec.paths import local_path
from ffrtmp.jobspec.presets import COPY, ENCODER_PRESETS, OVERRIDES, PRESETS
from ffrtmp.jobspec.sinks import FileSink, HlsSink, PushSink, Sink
from ffrtmp.jobspec.sources import FileSource, GeneratedSource, RemoteFile, Source, UrlSource
from ffrtmp.jobspec.spec import MAX_OUTPUTS, JobSpec, SpecError, parse, testsrc_params
from ffrtmp.jobspec.spec import OUTPUT_FIELDS as _OUTPUT_FIELDS
from ffrtmp.jobspec.spec import TOP_FIELDS as _TOP_FIELDS

__all__ = [
    "COPY",
    "ENCODER_PRESETS",
    "MAX_DURATION_S",
    "MAX_OUTPUTS",
    "OVERRIDES",
    "PRESETS",
    "_LIMIT_FIELDS",
    "_OUTPUT_FIELDS",
    "_TOP_FIELDS",
    "AudioSettings",
    "Bitrate",
    "FileSink",
    "FileSource",
    "GeneratedSource",
    "HlsSink",
    "JobSpec",
    "Limits",
    "PushSink",
    "RemoteFile",
    "Sink",
    "Source",
    "SpecError",
    "UrlSource",
    "VideoSettings",
    "format_number",
    "local_path",
    "parse",
    "testsrc_params",
]
