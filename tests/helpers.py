"""Small helpers shared by the tests: waiting on conditions with deadlines, free ports.

They live in ``tests/processes.py`` with the process fixtures the benchmarks share; this
module keeps the short import path the tests use.
"""

from __future__ import annotations

from tests.processes import WaitTimeout, free_port, wait_until

__all__ = ["WaitTimeout", "free_port", "wait_until"]
