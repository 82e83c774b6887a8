"""A master away for longer than the node timeout comes back without declaring its nodes dead:
offline detection waits one node timeout after the duties resume, so agents can heartbeat first."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from ffrtmp.layout import JobDir, attempt_name
from tests.conftest import kill_workloads, master_env, start_agent, start_master, stop_process
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, wait_final
from tests.integration.test_agent_resilience import realtime_job

NODE_TIMEOUT_S = 15
OUTAGE_S = NODE_TIMEOUT_S + 4


def duties_ran_after(database: Path, moment: float) -> bool:
    """True once the restarted master's duty passes (which once began with offline detection)
    have been running for a second."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT next_run_at FROM duties WHERE name = 'leases'").fetchone()
    return row is not None and row[0] > moment + 1


@pytest.mark.slow
def test_a_long_master_outage_loses_no_job_and_marks_no_node_offline(tmp_path: Path) -> None:
    env = master_env(tmp_path, FFRTMP_NODE_TIMEOUT=str(NODE_TIMEOUT_S))
    master = start_master(tmp_path, env)
    agent = start_agent(tmp_path, master)
    try:
        job_id = realtime_job(master, 45, "outage")
        # the workload itself must be running, not only its start committed: a kill between
        # that commit and the reply is another scenario (an unconfirmed start)
        wrapper = JobDir(agent.state_dir / "jobs" / attempt_name(job_id, 1)).wrapper_json
        wait_until(lambda: job(master, job_id)["state"] == "running" and wrapper.exists(), 60,
                   "the workload running")
        stop_process(master.proc, signal.SIGKILL)
        stopped = time.monotonic()
        # the outage is the scenario itself: agents keep failing heartbeats for all of it
        wait_until(lambda: time.monotonic() - stopped > OUTAGE_S
                   and "heartbeat failed" in agent.output(), OUTAGE_S + 30, "a long outage")
        # An agent's heartbeat may sit in a retry backoff for several seconds when the master
        # returns; holding the agent (not its workload) until the restarted master's duties
        # have run for a while makes that moment certain instead of a race.
        agent.proc.send_signal(signal.SIGSTOP)
        restarted = time.time()
        try:
            master = start_master(tmp_path, env, name="master-again")
            wait_until(lambda: duties_ran_after(tmp_path / "master.db", restarted), 30,
                       "duty passes after the restart")
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        done = wait_final(master, job_id, timeout=120)
        nodes = master.session().get(master.url + "/api/v1/nodes", timeout=30).json()["nodes"]
    finally:
        stop_process(master.proc)
        stop_process(agent.proc)
        kill_workloads(agent.state_dir)
        print(f"--- master ---\n{master.output()}\n--- agent ---\n{agent.output()}")
    assert [h["to"] for h in done["history"]] == ["queued", "assigned", "running", "succeeded"]
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1
    assert [n["status"] for n in nodes] == ["online"]
    assert "is offline" not in master.output()
