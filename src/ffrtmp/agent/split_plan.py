"""Where a split job cuts its source: keyframes near each multiple of the target length. Pure.

The agent runs ffprobe (``ffrtmp.agent.steps``) and hands the text here. Timestamps stay
``Decimal`` from ffprobe's text to the plan's ``start_s``: a float round trip could move a
seek point across a frame boundary, and a frame would then be lost or encoded twice at a seam.
Packets come in decode order (B-frames show later than they decode), so everything counts by
presentation time: a segment's frames are the packets whose pts lie in ``[cut_i, cut_i+1)``.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

SEEK_QUANTUM = Decimal("0.000001")  # ffprobe prints pts_time with 6 decimals
PACKETS_ARGS = ("-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                "-of", "csv=p=0")
STREAMS_ARGS = ("-v", "error", "-show_entries", "format=start_time,duration:stream=codec_type",
                "-of", "json")


class PlanError(ValueError):
    """The source cannot be planned (no video, a packet without a timestamp, unreadable text)."""


@dataclass(frozen=True)
class Packet:
    pts: Decimal
    key: bool


@dataclass(frozen=True)
class Streams:
    """What the stream and format probe says: the origin of the timeline, audio, the length."""

    start_time: Decimal
    duration_s: float | None
    audio: bool


def seek_text(pts_time: Decimal | str, start_time: Decimal | str) -> str:
    """A cut's ``start_s``: its keyframe's pts less the format's start time, as exact decimal
    text floored to 6 decimals (never negative: the first cut is the start of the file)."""
    value = (_decimal(pts_time) - _decimal(start_time)).quantize(SEEK_QUANTUM, rounding=ROUND_FLOOR)
    return f"{max(value, Decimal(0)):.6f}"


def parse_packets(text: str) -> list[Packet]:
    """ffprobe's ``pts_time,flags`` csv (one packet a line; some formats add empty fields or
    blank lines); packets the demuxer marks discarded (``D``) are never shown, so dropped."""
    packets = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split(",")
        if not fields[0]:
            continue
        flags = fields[1] if len(fields) > 1 else ""
        if "D" in flags:
            continue
        if fields[0] == "N/A":
            raise PlanError(f"video packet {number} has no timestamp; the source cannot be cut")
        packets.append(Packet(_decimal(fields[0]), "K" in flags))
    if not packets:
        raise PlanError("the source has no video stream")
    return packets


def parse_streams(text: str) -> Streams:
    """ffprobe's JSON for ``format=start_time,duration:stream=codec_type``."""
    try:
        doc = json.loads(text)
        streams = doc.get("streams") or []
        fmt: dict[str, Any] = doc.get("format") or {}
    except (ValueError, AttributeError):
        raise PlanError("ffprobe's stream report is not JSON") from None
    start = fmt.get("start_time")
    duration = _finite(fmt.get("duration"))
    return Streams(start_time=_decimal(start) if _finite(start) is not None else Decimal(0),
                   duration_s=duration if duration is not None and duration > 0 else None,
                   audio=any(isinstance(s, dict) and s.get("codec_type") == "audio" for s in streams))


def plan(packets: Sequence[Packet], streams: Streams, segment_s: float,
         max_segments: int) -> dict[str, Any]:
    """The plan as ``Plan.to_dict()`` spells it: segments of about ``segment_s`` each.

    A longer target is used when ``segment_s`` would make more than ``max_segments``.
    """
    times = sorted(p.pts for p in packets)
    keys = sorted({p.pts for p in packets if p.key})
    end = _video_end(times)
    target = _decimal(repr(float(segment_s)))
    cuts = cut_points(keys, times[0], end, target)
    while len(cuts) > max_segments:
        target *= max(Decimal(len(cuts)) / max_segments, Decimal("1.1"))
        cuts = cut_points(keys, times[0], end, target)
    bounds = [*cuts, end]
    segments = [{"start_s": seek_text(cut, streams.start_time),
                 "frames": _count(times, cut, bounds[i + 1], last=i == len(cuts) - 1),
                 "duration_s": float(bounds[i + 1] - cut)} for i, cut in enumerate(cuts)]
    duration = streams.duration_s if streams.duration_s is not None else float(end - times[0])
    return {"segments": segments, "audio": streams.audio, "duration_s": duration,
            "frames": len(times)}


def cut_points(keys: Sequence[Decimal], first: Decimal, end: Decimal,
               target: Decimal) -> list[Decimal]:
    """The first frame's pts, then the keyframe nearest each multiple of ``target`` after it.

    A cut closer than ``target / 2`` to the one before is skipped (a keyframe interval longer
    than the target would name one keyframe twice), and so is a last cut that would leave a
    tail shorter than ``target / 2``: that tail joins the segment before it.
    """
    cuts, half = [first], target / 2
    steps = math.ceil((end - first) / target) if target > 0 else 0
    for step in range(1, steps):
        key = _nearest(keys, first + step * target)
        if key is not None and key - cuts[-1] >= half and key < end:
            cuts.append(key)
    if len(cuts) > 1 and end - cuts[-1] < half:
        cuts.pop()
    return cuts


def _nearest(keys: Sequence[Decimal], target: Decimal) -> Decimal | None:
    """The keyframe nearest ``target``; on a tie, the earlier one."""
    if not keys:
        return None
    i = bisect_left(keys, target)
    candidates = [k for k in (keys[i - 1] if i else None, keys[i] if i < len(keys) else None)
                  if k is not None]
    return min(candidates, key=lambda k: abs(k - target))


def _video_end(times: Sequence[Decimal]) -> Decimal:
    """Where the last frame stops showing: its pts plus the interval before it."""
    if len(times) < 2:
        return times[-1] + SEEK_QUANTUM
    return times[-1] + (times[-1] - times[-2])


def _count(times: Sequence[Decimal], start: Decimal, stop: Decimal, *, last: bool) -> int:
    upto = len(times) if last else bisect_left(times, stop)
    return upto - bisect_left(times, start)


def _decimal(value: Any) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise PlanError(f"not a timestamp: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise PlanError(f"not a timestamp: {str(value)[:40]!r}")
    return number


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
