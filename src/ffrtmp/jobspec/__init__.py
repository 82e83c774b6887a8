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
from ffrtmp.jobspec.spec import MAX_OUTPUTS, SUBMITTED_STEP, JobSpec, SpecError, parse, testsrc_params
from ffrtmp.jobspec.spec import OUTPUT_FIELDS as _OUTPUT_FIELDS
from ffrtmp.jobspec.spec import TOP_FIELDS as _TOP_FIELDS
from ffrtmp.jobspec.split import (
    Child,
    Cut,
    Plan,
    audio_tracks,
    part_children,
    plan_child,
    stitch_child,
    sweep_child,
    track_of,
    workspace_base,
)
from ffrtmp.jobspec.steps import (
    INTERMEDIATE_EXTENSION,
    MAX_SEGMENTS,
    AudioStep,
    PartStep,
    PlanStep,
    SegmentStep,
    StitchStep,
    SweepStep,
    audio_name,
    segment_name,
    workspace,
)

__all__ = [
    "COPY",
    "ENCODER_PRESETS",
    "INTERMEDIATE_EXTENSION",
    "MAX_DURATION_S",
    "MAX_OUTPUTS",
    "MAX_SEGMENTS",
    "OVERRIDES",
    "PRESETS",
    "SUBMITTED_STEP",
    "_LIMIT_FIELDS",
    "_OUTPUT_FIELDS",
    "_TOP_FIELDS",
    "AudioSettings",
    "AudioStep",
    "Bitrate",
    "Child",
    "Cut",
    "FileSink",
    "FileSource",
    "GeneratedSource",
    "HlsSink",
    "JobSpec",
    "Limits",
    "PartStep",
    "Plan",
    "PlanStep",
    "PushSink",
    "RemoteFile",
    "SegmentStep",
    "Sink",
    "Source",
    "SpecError",
    "StitchStep",
    "SweepStep",
    "UrlSource",
    "VideoSettings",
    "audio_name",
    "audio_tracks",
    "format_number",
    "local_path",
    "parse",
    "part_children",
    "plan_child",
    "segment_name",
    "stitch_child",
    "sweep_child",
    "testsrc_params",
    "track_of",
    "workspace",
    "workspace_base",
]
