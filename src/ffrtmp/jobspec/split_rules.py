"""Which jobs may be split, and where their intermediates can go.

A split job is cut into segments that are encoded apart and joined without re-encoding, so it
needs a whole file to cut (no live or streamed input), file outputs to join into (no push),
an encode to cut at (no stream copy), and a shared place for the segments: the store or a
media root. Each refusal names its field and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from ffrtmp.jobspec.paths import STORE_PREFIX
from ffrtmp.jobspec.sinks import FileSink, HlsSink, PushSink, Sink
from ffrtmp.jobspec.sources import FileSource, RemoteFile, Source
from ffrtmp.jobspec.steps import segment_length
from ffrtmp.validation import FieldError, known_fields, string_keys

SPLIT_FIELDS = ("segment_s",)
NOT_A_FILE = ("needs a file input (a media-root file, store:/// or http(s):// file); live "
              "streams, streamed URLs and test patterns cannot be split")
A_PUSH = "is an RTMP push; a split job writes files (mp4, mkv or HLS)"
A_COPY = "is a stream copy; a split job re-encodes every segment, so it cannot copy"
A_RATE = ("cannot be combined with split: segments keep the source's frame rate, so that they "
          "meet frame for frame")
A_DURATION = "cannot be combined with split; a split job encodes the whole file"
NO_PLACE = ("needs a store:/// or media-root output or input to hold its intermediate "
            "segments")


def parse_split(value: Any) -> float | None:
    """``{"segment_s": N}``: N seconds per segment; 0, null or no split field: not split."""
    if value is None:
        return None
    doc = string_keys(value, "split")
    known_fields(doc, SPLIT_FIELDS, "split.")
    if "segment_s" not in doc:
        raise FieldError("split.segment_s", "is required (seconds per segment; 0: no split)")
    if doc["segment_s"] == 0 and not isinstance(doc["segment_s"], bool):
        return None
    return segment_length(doc["segment_s"], "split.segment_s")


def check_split(source: Source, outputs: Sequence[Sink], duration_s: float | None) -> None:
    """Refuse what cannot be split, naming the first field that stands in the way."""
    if not isinstance(source, FileSource | RemoteFile):
        raise FieldError("split", NOT_A_FILE)
    for index, out in enumerate(outputs):
        if isinstance(out, PushSink):
            raise FieldError(f"outputs[{index}].url", A_PUSH)
        for stream, settings in (("video", out.video), ("audio", out.audio)):
            if settings.is_copy:
                raise FieldError(f"outputs[{index}].{stream}_codec", A_COPY)
        if out.video.fps is not None:
            raise FieldError(f"outputs[{index}].fps", A_RATE)
    if duration_s is not None:
        raise FieldError("duration_s", A_DURATION)
    if base_of(source, outputs) is None:
        raise FieldError("split", NO_PLACE)


def base_of(source: Source, outputs: Sequence[Sink]) -> str | None:
    """The directory of the first output, else of the input, in the store or a media root."""
    for out in outputs:
        if isinstance(out, FileSink | HlsSink):
            base = _directory(out.upload, out.path)
            if base is not None:
                return base
    if isinstance(source, FileSource):
        return str(PurePosixPath(source.path).parent)
    if isinstance(source, RemoteFile):
        return _directory(source.url, None)
    return None


def _directory(upload: str | None, path: str | None) -> str | None:
    if upload is None:
        return None if path is None else str(PurePosixPath(path).parent)
    if upload.startswith(STORE_PREFIX):
        return upload.rsplit("/", 1)[0]
    return None  # an http(s) upload: not a place the farm can list and clean
