"""Delays between tries of a transfer: doubling from ``first`` up to ``cap``, with jitter.

The jitter (each delay is 80-100 % of its step) keeps the workers of a farm from retrying a
store that came back in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(first: float = 1.0, cap: float = 30.0) -> Iterator[float]:
    """1, 2, 4, … seconds (never above ``cap``), each shortened by up to a fifth, forever."""
    step = first
    while True:
        yield min(step, cap) * random.uniform(0.8, 1.0)  # noqa: S311 (jitter, not secrecy)
        step = min(step * 2, cap)
