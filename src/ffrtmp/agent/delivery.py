"""A succeeded job's outputs: what each one is, what goes where, and the record of what arrived.

``plan`` describes each output once: the file its record describes (the file, or an HLS
playlist) and the objects to upload, in order. An HLS rendition goes up as a whole, every
segment its playlist names and then the playlist, so a player never sees a playlist that names
a missing segment. ``UploadLog`` (``uploads.json``) grows by one entry per object in place, so
an upload cut by a restart resumes with the next object and the encode is never run again.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ffrtmp.files import read_json, write_json_atomic
from ffrtmp.jobspec import AudioStep, HlsSink, JobSpec, SegmentStep
from ffrtmp.media.digests import sha256_hex
from ffrtmp.progress import finite_float
from ffrtmp.urls import redact

PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Piece:
    """One object to upload: a local file and its resolved URL."""

    local: Path
    url: str


@dataclass(frozen=True)
class Output:
    url: str  # as the spec gave it
    file: Path  # what the record describes
    upload: str | None  # the resolved URL of ``file``, when it is uploaded
    hls: bool
    probed: bool = True  # whether the record says what ffprobe sees (not for intermediates)

    def pieces(self) -> list[Piece]:
        """The objects to upload, in order; read when the upload starts (segments exist then)."""
        if self.upload is None:
            return []
        if not self.hls:
            return [Piece(self.file, self.upload)]
        segments = [Piece(self.file.parent / name, urljoin(self.upload, name))
                    for name in playlist_entries(self.file)]
        return [*segments, Piece(self.file, self.upload)]


def plan(spec: JobSpec, resolve: Callable[[str], str]) -> list[Output]:
    """The outputs of a localized spec that are files (a live push has nothing to record).

    A split job's segments and audio are intermediates only the stitch reads: their records
    keep the bytes and checksum but skip ffprobe, two runs per file that made up most of a
    segment's hand-over time.
    """
    probed = not isinstance(spec.step, SegmentStep | AudioStep)
    return [Output(out.url, Path(out.path), resolve(out.upload) if out.upload else None,
                   isinstance(out, HlsSink), probed)
            for out in spec.outputs if out.path is not None]


def playlist_entries(playlist: Path) -> list[str]:
    """The segment names an HLS media playlist lists (its non-tag lines), in order."""
    lines = playlist.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def record(output: Output) -> dict[str, Any]:
    """What the result says about an output: its size, checksum, and what ffprobe sees."""
    duration, size = probe_media(str(output.file)) if output.probed else (None, None)
    return {"url": redact(output.url), "bytes": output.file.stat().st_size,
            "sha256": sha256_hex(output.file), "duration_s": duration, "size": size}


def probe_media(path: str, ffprobe: str = "ffprobe") -> tuple[float | None, str | None]:
    """The container's duration and the first video stream's ``WxH``, from one ffprobe run:
    the answers of ``probe_duration_s`` and ``probe_video_size``, at half the cost (it runs
    while the slot's next encode does). Raises FileNotFoundError when ffprobe is missing."""
    try:
        done = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                               "format=duration:stream=width,height", "-of", "json", "-i", path],
                              capture_output=True, text=True, errors="replace", check=False,
                              timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        data = json.loads(done.stdout) if done.returncode == 0 else {}
    except (subprocess.TimeoutExpired, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    fmt = data.get("format")
    duration = finite_float(str(fmt.get("duration"))) if isinstance(fmt, dict) else None
    streams = data.get("streams")
    first = streams[0] if isinstance(streams, list) and streams and isinstance(streams[0], dict) else {}
    size = f"{first.get('width')}x{first.get('height')}"
    return (duration if duration is not None and duration > 0 else None,
            size if re.fullmatch(r"\d+x\d+", size) else None)


@dataclass
class UploadLog:
    """``uploads.json``: the records so far, the URLs in place, and how the delivery ended."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    ended: str | None = None  # "delivered", or the reason it was abandoned

    @classmethod
    def load(cls, path: Path) -> UploadLog:
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict):
            return cls(path)
        return cls(path, list(data.get("records") or []), list(data.get("placed") or []),
                   data.get("ended"))

    def save(self) -> None:
        write_json_atomic(self.path, {"records": self.records, "placed": self.placed,
                                      "ended": self.ended})
