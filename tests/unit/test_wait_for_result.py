"""``agent.jobs.wait_for_result``: how the agent (and the benchmarks) wait for a wrapper."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ffrtmp.agent.jobs import wait_for_result


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_returns_at_the_result_not_at_the_exit(tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    child = _child(f"import pathlib, time; pathlib.Path({str(result)!r}).write_text('{{}}'); "
                   "time.sleep(30)")
    try:
        started = time.monotonic()
        assert wait_for_result(child, result, timeout_s=20)
        assert time.monotonic() - started < 20
        assert child.poll() is None  # still running: the result alone ended the wait
    finally:
        child.kill()
        child.wait()


def test_an_exit_without_a_result_is_false(tmp_path: Path) -> None:
    child = _child("raise SystemExit(3)")
    assert not wait_for_result(child, tmp_path / "result.json", timeout_s=20)
    assert child.wait(5) == 3


def test_a_timeout_is_false_and_leaves_the_wrapper_alone(tmp_path: Path) -> None:
    child = _child("import time; time.sleep(30)")
    try:
        started = time.monotonic()
        assert not wait_for_result(child, tmp_path / "result.json", timeout_s=0.2)
        assert 0.2 <= time.monotonic() - started < 10
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
