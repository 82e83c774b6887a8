"""The agent's loop wakes when a wrapper records its result, not only when the wrapper exits.

After ``result.json`` the wrapper only counts, logs and exits; its interpreter's exit is no
part of the slot's time. Real processes stand in for wrappers: one that writes its result and
lingers, one that dies without a result (the loop must still wake to record it lost).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ffrtmp.agent.jobs import JobTable


def _table(tmp_path: Path) -> JobTable:
    return JobTable(str(tmp_path / "state"), log_dir=str(tmp_path / "log"), log_level="INFO",
                    cancel_grace_s=5, media_roots=(str(tmp_path),), keep_delivered=10,
                    keep_delivered_s=3600, standby=0)


def _watch(table: JobTable, child: subprocess.Popen[bytes], result: Path) -> threading.Thread:
    thread = threading.Thread(target=table._wake_when_done, args=(child, result), daemon=True)
    thread.start()
    return thread


def test_a_recorded_result_wakes_the_loop_while_the_wrapper_lingers(tmp_path: Path) -> None:
    table, result = _table(tmp_path), tmp_path / "result.json"
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time; time.sleep(0.3); open(sys.argv[1], 'w').write('{}');"
                              " time.sleep(30)", str(result)])
    try:
        thread = _watch(table, child, result)
        assert table.changed.wait(10), "no wake-up after the result was written"
        woke = time.monotonic()
        assert result.exists() and child.poll() is None  # woken by the result, the wrapper alive
        table.changed.clear()
    finally:
        child.kill()
    assert table.changed.wait(10)  # and once more when it exits
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - woke < 10


def test_a_wrapper_that_dies_without_a_result_wakes_the_loop(tmp_path: Path) -> None:
    table, result = _table(tmp_path), tmp_path / "result.json"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    thread = _watch(table, child, result)
    assert table.changed.wait(10)
    thread.join(10)
    assert not thread.is_alive() and child.returncode == 0 and not result.exists()


def test_without_a_pidfd_the_wrapper_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr("os.pidfd_open")
    table, result = _table(tmp_path), tmp_path / "result.json"
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time; time.sleep(0.2); open(sys.argv[1], 'w').write('{}');"
                              " time.sleep(30)", str(result)])
    try:
        _watch(table, child, result)
        assert table.changed.wait(10) and result.exists() and child.poll() is None
    finally:
        child.kill()
