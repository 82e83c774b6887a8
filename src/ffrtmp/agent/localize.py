"""The spec as FFmpeg runs it on this node: remote media replaced by the attempt's scratch files.

A staged input becomes a file in the inbox; an uploaded output becomes a file in the outbox (its
``path`` was relative to it); a streamed ``store:///`` input gets the store's URL. Pure, so
the argv builder never sees a URL it would have to fetch or upload itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ffrtmp.jobspec import FileSink, FileSource, HlsSink, JobSpec, RemoteFile, Sink, UrlSource
from ffrtmp.layout import ScratchDir


def localize(spec: JobSpec, scratch: ScratchDir, resolve: Callable[[str], str]) -> JobSpec:
    source = spec.source
    if isinstance(source, RemoteFile):
        source = FileSource(url=source.url, path=str(scratch.inbox / source.name))
    elif isinstance(source, UrlSource) and source.scheme == "store":
        url = resolve(source.url)
        source = replace(source, url=url, scheme=url.split(":", 1)[0])
    outputs = tuple(_placed(out, scratch) for out in spec.outputs)
    return replace(spec, source=source, outputs=outputs)


def _placed(out: Sink, scratch: ScratchDir) -> Sink:
    if isinstance(out, FileSink | HlsSink) and out.upload:
        return replace(out, path=str(scratch.outbox / out.path))
    return out
