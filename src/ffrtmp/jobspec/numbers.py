"""Numbers written as text in a job spec: durations, bitrates, sizes, frame rates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ffrtmp.validation import FieldError, finite_number

MAX_DURATION_S = 86400.0
MIN_DURATION_S = 0.001  # FFmpeg takes durations in decimal seconds; finer values round to zero

_BITRATE = re.compile(
    r"([1-9][0-9]{2,9})|([1-9][0-9]{0,6})[kK]|([1-9][0-9]{0,3}(?:\.[0-9]{1,3})?)M")
_SIZE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


@dataclass(frozen=True)
class Bitrate:
    """A bitrate as bits per second, and as it was written (FFmpeg gets the written form)."""

    bps: int
    text: str


def format_number(value: float) -> str:
    """Decimal text FFmpeg accepts for seconds and rates (never exponent notation)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def bitrate(value: Any, where: str) -> Bitrate:
    usage = "must be a bitrate such as 900k, 4M or 128000 (between 1k and 500M)"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _BITRATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FieldError(where, usage)
    plain, kilo, mega = match.groups()
    bps = int(plain) if plain else int(kilo) * 1000 if kilo else round(float(mega) * 1_000_000)
    if not 1000 <= bps <= 500_000_000:
        raise FieldError(where, usage)
    return Bitrate(bps=bps, text=value)


def size(value: Any, where: str) -> tuple[int, int]:
    usage = "must be WIDTHxHEIGHT with even numbers between 16 and 8192, e.g. 1280x720"
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FieldError(where, usage)
    width, height = int(match.group(1)), int(match.group(2))
    for dim in (width, height):
        if dim % 2 or not 16 <= dim <= 8192:
            raise FieldError(where, usage)
    return width, height


def fps(value: Any, where: str) -> float:
    usage = "must be a frame rate between 1 and 240, e.g. 30 or 29.97"
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise FieldError(where, usage)
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value) if 1 <= value <= 240 else 0.0  # also turns NaN away
    else:
        raise FieldError(where, usage)
    if not 1 <= number <= 240:
        raise FieldError(where, usage)
    return float(format_number(number))  # what the canonical text says, so it round-trips


def duration(value: Any, where: str, what: str = "duration") -> float:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise FieldError(where, f"{what} must be a number of seconds, e.g. 10 or 2.5")
        number = float(value)
    else:
        number = finite_number(value, where)
    if not MIN_DURATION_S <= number <= MAX_DURATION_S:
        raise FieldError(where, f"{what} must be between {format_number(MIN_DURATION_S)} and "
                                f"{format_number(MAX_DURATION_S)} seconds")
    return number


def optional_duration(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise FieldError(where, "must be a number of seconds or null")
    return duration(value, where)
