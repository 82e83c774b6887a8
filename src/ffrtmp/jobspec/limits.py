"""A job's cgroup v2 limits, normalised to what the kernel files accept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ffrtmp.validation import FieldError, known_fields, string_keys

MIN_MEMORY_BYTES = 16 << 20  # below this FFmpeg is killed before it decodes a frame
MAX_MEMORY_BYTES = 1 << 50
DEFAULT_CPU_PERIOD_US = 100_000
LIMIT_FIELDS = ("cpu_max", "memory_max")

_CPU_MAX = re.compile(r"(max|[0-9]{1,10})(?: ([0-9]{1,7}))?")
_MEMORY = re.compile(r"([0-9]{1,16})([kKmMgGtT]?)")
_MEMORY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Limits:
    """cgroup v2 values, already normalised to what the kernel files accept."""

    cpu_max: str | None = None
    memory_max: str | None = None


def parse_limits(value: Any) -> Limits:
    if value is None:
        return Limits()
    doc = string_keys(value, "limits")
    known_fields(doc, LIMIT_FIELDS, "limits.")
    return Limits(cpu_max=_cpu_max(doc.get("cpu_max")),
                  memory_max=_memory_max(doc.get("memory_max")))


def _cpu_max(value: Any) -> str | None:
    """cgroup v2 ``cpu.max``: quota (or max) and period in microseconds."""
    if value is None:
        return None
    usage = 'must be cgroup v2 cpu.max syntax such as "max 100000" or "50000 100000"'
    match = _CPU_MAX.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FieldError("limits.cpu_max", usage)
    quota, period = match.group(1), int(match.group(2) or DEFAULT_CPU_PERIOD_US)
    if not 1000 <= period <= 1_000_000:
        raise FieldError("limits.cpu_max", "period must be between 1000 and 1000000 microseconds")
    if quota != "max" and int(quota) < 1000:
        raise FieldError("limits.cpu_max", "quota must be at least 1000 microseconds or max")
    return f"{quota if quota == 'max' else int(quota)} {period}"


def _memory_max(value: Any) -> str | None:
    """cgroup v2 ``memory.max`` in bytes, or ``max``; K/M/G/T suffixes are powers of 1024."""
    if value is None:
        return None
    usage = 'must be bytes or a size such as "512M", "2G" or "max"'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError("limits.memory_max", usage)
    if value == "max":
        return "max"
    match = _MEMORY.fullmatch(str(value))
    if match is None:
        raise FieldError("limits.memory_max", usage)
    size = int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
    if not MIN_MEMORY_BYTES <= size <= MAX_MEMORY_BYTES:
        raise FieldError("limits.memory_max", "must be at least 16M (FFmpeg needs that much "
                                              "to start) and at most 1024T")
    return str(size)
