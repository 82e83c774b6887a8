"""The one timestamp format ffrtmp writes: ISO-8601 in UTC with a ``Z``.

Files, the API and the logs are read by operators and by other tools, so every timestamp
has the same shape; only the precision varies (milliseconds for events, seconds for
reports that refresh).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime, timespec: Precision = "milliseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_from_ts(ts: float | None, timespec: Precision = "milliseconds") -> str | None:
    """A Unix time as the store and the agent keep it; None stays None (never happened).

    Every job view formats several of these, so this skips ``iso``'s conversion: a time made
    in UTC always ends in ``+00:00``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec)[:-6] + "Z"


def now_iso(timespec: Precision = "milliseconds") -> str:
    return iso(utc_now(), timespec)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
