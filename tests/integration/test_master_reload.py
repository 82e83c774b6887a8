"""The gunicorn arbiter under reloads, worker deaths and early stops: one real master each time."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import MasterProcess, master_env, start_master, stop_process
from tests.helpers import wait_until


def worker_pids(master: MasterProcess) -> set[int]:
    """The arbiter's children, read from /proc (gunicorn has no other way to list them)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master.proc.pid:
            children.add(int(entry.name))
    return children


class ClientLoop:
    """Requests /health until stopped, on fresh or kept-alive connections; records every failure."""

    def __init__(self, url: str, keep_alive: bool = False) -> None:
        self.url, self.answered, self.failures = url, 0, []  # type: ignore[var-annotated]
        self.session = requests.Session()
        if not keep_alive:
            self.session.headers["Connection"] = "close"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.session.get(self.url + "/health", timeout=15)
                if reply.status_code == 200:
                    self.answered += 1
                else:
                    self.failures.append(f"{reply.status_code} {reply.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _metrics(master: MasterProcess) -> str:
    return requests.get(master.metrics_url + "/metrics", timeout=10).text


@pytest.mark.slow
def test_sighup_reloads_without_losing_a_request(tmp_path: Path) -> None:
    m = start_master(tmp_path)
    try:
        before = wait_until(lambda: len(worker_pids(m)) == 2 and worker_pids(m), 30, "two workers")
        loops = [ClientLoop(m.url), ClientLoop(m.url, keep_alive=True)]
        wait_until(lambda: all(loop.answered >= 20 for loop in loops), 30, "the client loops to run")
        for _ in range(2):  # a second reload proves the first left the metrics directory intact
            old = worker_pids(m)
            os.kill(m.proc.pid, signal.SIGHUP)
            wait_until(lambda old=old: len(worker_pids(m)) == 2 and not worker_pids(m) & old, 60,
                       "the old workers to be replaced")
        counts = [loop.answered for loop in loops]
        wait_until(lambda: all(loop.answered >= n + 20 for loop, n in zip(loops, counts, strict=True)),
                   30, "requests answered after the reloads")
        for loop in loops:
            loop.stop()
        assert [loop.failures for loop in loops] == [[], []]
        assert not worker_pids(m) & before and m.proc.poll() is None
        assert "ffrtmp_jobs_pending" in _metrics(m)
    finally:
        assert stop_process(m.proc) == 0, m.output()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_dead_worker_is_replaced_and_the_master_keeps_serving(tmp_path: Path, sig: int) -> None:
    m = start_master(tmp_path)
    try:
        workers = wait_until(lambda: len(worker_pids(m)) == 2 and worker_pids(m), 30, "two workers")
        victim = min(workers)
        os.kill(victim, sig)
        wait_until(lambda: len(worker_pids(m)) == 2 and victim not in worker_pids(m), 60,
                   "a replacement worker")
        for _ in range(20):  # new connections reach both workers, the replacement included
            assert requests.get(m.url + "/health", headers={"Connection": "close"},
                                timeout=10).status_code == 200
        assert "ffrtmp_jobs_pending" in _metrics(m)
        assert m.proc.poll() is None
    finally:
        assert stop_process(m.proc) == 0, m.output()


def _catches_sigterm(pid: int) -> bool:
    """True once the process has a SIGTERM handler: from then on it decides how it stops."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.slow
def test_sigterm_at_any_moment_after_start_exits_zero(tmp_path: Path) -> None:
    outcomes = []
    for attempt in range(20):
        run = tmp_path / f"run{attempt}"
        run.mkdir()
        m = start_master(run, master_env(run), wait_ready=False)
        try:
            wait_until(lambda m=m: _catches_sigterm(m.proc.pid), 30, "a SIGTERM handler")
            time.sleep(attempt * 0.05)  # the variable under test: 0 to 950 ms into the start
            started = time.monotonic()
            os.kill(m.proc.pid, signal.SIGTERM)
            code = m.proc.wait(60)
            outcomes.append((attempt, code, round(time.monotonic() - started, 1)))
            assert code == 0, f"attempt {attempt}: exit {code}\n{m.output()}"
        finally:
            stop_process(m.proc)
    slow = [outcome for outcome in outcomes if outcome[2] >= 20]
    assert not slow, f"(attempt, exit, seconds to stop) beyond 20 s: {slow}"


def test_metrics_files_live_in_the_systemd_runtime_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    (runtime / "metrics").mkdir(parents=True)
    stale = runtime / "metrics" / "counter_99999.db"
    stale.write_bytes(b"from a master that was killed")
    m = start_master(tmp_path, {**master_env(tmp_path), "RUNTIME_DIRECTORY": str(runtime)})
    try:
        requests.get(m.url + "/health", timeout=10).raise_for_status()
        assert "ffrtmp_http_requests_total" in _metrics(m)
        files = {p.name for p in (runtime / "metrics").iterdir()}
        assert stale.name not in files
        assert any(name.startswith("counter_") for name in files), files
    finally:
        assert stop_process(m.proc) == 0, m.output()
    assert runtime.is_dir() and not (runtime / "metrics").exists()
