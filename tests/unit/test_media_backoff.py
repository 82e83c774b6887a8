"""Transfer retry delays: doubling, capped, jittered downwards."""

from __future__ import annotations

import itertools

from ffrtmp.media.backoff import delays


def test_delays_double_up_to_the_cap_with_jitter() -> None:
    got = list(itertools.islice(delays(1.0, 30.0), 10))
    steps = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert all(0.8 * step <= d <= step for d, step in zip(got, steps, strict=True)), got
