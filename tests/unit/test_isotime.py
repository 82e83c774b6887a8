"""The one timestamp format: a Unix time and a datetime of the same moment read the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ffrtmp.isotime import iso, iso_from_ts, parse_iso

MOMENTS = [0.0, 1.0005, 1_796_350_196.68045, 1_796_350_196.9999, 4_102_444_799.999, -1.5]


@pytest.mark.parametrize("ts", MOMENTS)
@pytest.mark.parametrize("timespec", ["seconds", "milliseconds"])
def test_a_unix_time_reads_as_its_datetime_does(ts: float, timespec: str) -> None:
    text = iso_from_ts(ts, timespec)  # type: ignore[arg-type]
    assert text == iso(datetime.fromtimestamp(ts, UTC), timespec)  # type: ignore[arg-type]
    assert text is not None and text.endswith("Z") and "+" not in text
    assert abs(parse_iso(text).timestamp() - ts) < (1 if timespec == "seconds" else 0.001)


def test_a_datetime_in_another_zone_is_written_in_utc() -> None:
    moment = datetime(2026, 12, 4, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso(moment, "seconds") == "2026-12-04T01:00:00Z"


def test_none_stays_none() -> None:
    assert iso_from_ts(None) is None
