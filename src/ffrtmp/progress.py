"""FFmpeg's ``-progress`` file: the last complete report, parsed in one place.

The wrapper asks whether the encode reached ``progress=end`` (how an adopted workload is
judged); the agent turns the latest report into the heartbeat's progress. FFmpeg appends a
``key=value`` block ending in ``progress=continue|end`` every ``-stats_period``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ffrtmp.files import tail

PROGRESS_TAIL_BYTES = 64 * 1024  # a few hundred blocks: the last one is always whole


@dataclass(frozen=True)
class Progress:
    """The latest complete report FFmpeg wrote to its ``-progress`` file."""

    out_time_s: float | None
    fps: float | None
    speed: float | None
    frame: int | None
    percent: float | None
    ended: bool
    eta_s: float | None = None  # the time left at this speed, when the length is known


def read_progress(path: str, expected_duration_s: float | None) -> Progress | None:
    """Parse the last complete block of a ``-progress`` file; None until there is one.

    Only the file's tail is read, so polling a day-long job stays cheap.
    """
    block = _last_block(Path(path))
    if block is None:
        return None
    return _progress(block, expected_duration_s)


def reached_end(path: Path) -> bool | None:
    """Whether the last report says ``progress=end``; None when there is no such file."""
    if not path.exists():
        return None
    block = _last_block(path)
    return block is not None and block.get("progress") == "end"


def _last_block(path: Path) -> dict[str, str] | None:
    text = tail(path, PROGRESS_TAIL_BYTES, whole_lines=True)
    if text is None:
        return None
    lines = text.split("\n")[:-1]  # the last element is an unterminated (or empty) line
    ends = [i for i, line in enumerate(lines) if line.startswith("progress=")]
    if not ends:
        return None
    first = ends[-2] + 1 if len(ends) > 1 else 0
    block: dict[str, str] = {}
    for line in lines[first:ends[-1] + 1]:
        key, sep, value = line.partition("=")
        if sep:
            block[key.strip()] = value.strip()
    return block


def _progress(block: dict[str, str], expected_duration_s: float | None) -> Progress:
    out_time_s = _out_time_s(block)
    percent = None
    if out_time_s is not None and expected_duration_s:
        percent = round(min(100.0, 100.0 * out_time_s / expected_duration_s), 1)
    frame = finite_float(block.get("frame"))
    speed = finite_float(block.get("speed", "").removesuffix("x"))
    return Progress(
        out_time_s=out_time_s,
        fps=finite_float(block.get("fps")),
        speed=speed,
        frame=int(frame) if frame is not None else None,
        percent=percent,
        ended=block.get("progress") == "end",
        eta_s=eta_s(out_time_s, expected_duration_s, speed),
    )


def eta_s(out_time_s: float | None, expected_duration_s: float | None,
          speed: float | None) -> float | None:
    """Seconds of wall time left: the media still to encode over the speed FFmpeg reports."""
    if out_time_s is None or not expected_duration_s or not speed or speed <= 0:
        return None
    return round(max(0.0, expected_duration_s - out_time_s) / speed, 1)


def _out_time_s(block: dict[str, str]) -> float | None:
    # out_time_ms is microseconds too (a long-standing FFmpeg quirk), so prefer out_time_us.
    micros = finite_float(block.get("out_time_us", block.get("out_time_ms")))
    if micros is not None:
        return micros / 1e6 if micros >= 0 else None
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", block.get("out_time", ""))
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def finite_float(value: str | None) -> float | None:
    """FFmpeg writes N/A (and once in a while garbage) where it has no value yet."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
