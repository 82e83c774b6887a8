"""Delivered jobs are a bounded history: pruned by age and count, never a live job, CPU flat."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import MasterProcess, agent_env, kill_workloads, start_agent, stop_process
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, media
from tests.integration.test_agent_resilience import realtime_job, running_with_workload

HISTORY = 3000
KEEP = 200
AGED = 150  # delivered two days ago: older than the 24 h kept by default


def write_history(state_dir: Path, log_dir: str, roots: tuple[str, ...],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivered job directories in the agent's own format, written by its own writers."""
    from ffrtmp.agent.jobs import JobTable
    from ffrtmp.wrapper.result import COMPLETED

    table = JobTable(str(state_dir), log_dir=log_dir, log_level="info", cancel_grace_s=10,
                     media_roots=roots, keep_delivered=HISTORY * 2, keep_delivered_s=10**9)
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)  # durability is not what this data is for
        for i in range(HISTORY):
            job = table.prepare({"job_id": f"j-old{i:06d}", "attempt": 1, "attempt_token": f"t{i}",
                                 "spec": {}}, None)
            table.reject(job, COMPLETED)
            table.mark_delivered(job, {"job": {"state": "succeeded"}})
            if i < AGED:
                aged = time.time() - 48 * 3600
                os.utime(job.files.delivered, (aged, aged))


def delivered_dirs(state_dir: Path) -> list[Path]:
    return [d for d in (state_dir / "jobs").iterdir() if (d / "delivered.json").exists()]


def cpu_percent(pid: int, window_s: float) -> float:
    """The process's CPU use over a window of wall time, in percent of one CPU."""
    process = psutil.Process(pid)
    before, started = process.cpu_times(), time.monotonic()
    time.sleep(window_s)
    after, wall = process.cpu_times(), time.monotonic() - started
    return 100 * ((after.user + after.system) - (before.user + before.system)) / wall


@pytest.mark.slow
def test_history_is_pruned_to_its_bound_and_an_idle_agent_stays_cheap(
        master_proc: MasterProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = agent_env(tmp_path, master_proc, FFRTMP_JOB_HISTORY=str(KEEP))
    agent = start_agent(tmp_path, master_proc, env=env)
    try:
        job_id = realtime_job(master_proc, 60, "history")
        running_with_workload(master_proc, agent, job_id)
        [live] = agent.job_dirs()
        stop_process(agent.proc, signal.SIGKILL)  # its workload keeps running
        write_history(agent.state_dir, env["FFRTMP_LOG_DIR"], (str(media(master_proc)),), monkeypatch)
        newest = sorted(delivered_dirs(agent.state_dir),
                        key=lambda d: ((d / "delivered.json").stat().st_mtime, d.name))
        agent = start_agent(tmp_path, master_proc, env=env)
        wait_until(lambda: len(delivered_dirs(agent.state_dir)) <= KEEP, 60, "the history to be pruned")
        kept = set(delivered_dirs(agent.state_dir))
        # the newest of the old history, and the live job once it is delivered, the newest of all
        assert len(kept) == KEEP and set(newest[1 - KEEP:]) <= kept <= {*newest, live}
        assert live.is_dir(), "a running job is never pruned"
        # writing the history may outlast the node timeout: the master may first call the
        # silent node's job lost, and the result of the same attempt then settles it
        done = wait_until(lambda: (j := job(master_proc, job_id))["state"] == "succeeded" and j, 90,
                          "the live job to succeed")
        assert len(done["attempts"]) == 1
        wait_until((live / "delivered.json").exists, 10, "the finished job's delivery")
        wait_until(lambda: len(delivered_dirs(agent.state_dir)) == KEEP, 10, "the history at its bound")
        assert live in delivered_dirs(agent.state_dir), "the newest delivered job is kept"
        used = cpu_percent(agent.proc.pid, 15)
        assert used < 3.0, f"an idle agent used {used:.1f} % of a CPU over a pruned history"
    finally:
        stop_process(agent.proc)
        kill_workloads(agent.state_dir)
        print(f"--- agent ---\n{agent.output()}")
