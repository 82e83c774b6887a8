"""The spec as FFmpeg runs it on this node: remote media replaced by the attempt's scratch files.

A staged input becomes a file in the inbox, and an uploaded output a file in the outbox (its
``path`` was relative to it). A stitch that reads its intermediates from the store reads the
inbox instead: every read is staged under its object's name (unique in a workspace), so the
workspace becomes the inbox and ``reads()`` of the placed spec names the staged files. Pure,
so the argv builder never sees a URL it would have to fetch or upload itself.
"""

from __future__ import annotations

from dataclasses import replace

from ffrtmp.jobspec import FileSink, FileSource, HlsSink, JobSpec, RemoteFile, Sink, StitchStep
from ffrtmp.layout import ScratchDir


def localize(spec: JobSpec, scratch: ScratchDir) -> JobSpec:
    source = spec.source
    if isinstance(source, RemoteFile):
        source = FileSource(url=source.url, path=str(scratch.inbox / source.name))
    outputs = tuple(_placed(out, scratch) for out in spec.outputs)
    step = spec.step
    if isinstance(step, StitchStep) and any(isinstance(r, RemoteFile) for r in spec.reads()):
        step = replace(step, workspace=str(scratch.inbox))
    return replace(spec, source=source, outputs=outputs, step=step)


def _placed(out: Sink, scratch: ScratchDir) -> Sink:
    if isinstance(out, FileSink | HlsSink) and out.upload:
        return replace(out, path=str(scratch.outbox / out.path))
    return out
