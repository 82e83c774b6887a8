"""The master reconciles: an attempt its heartbeating node no longer knows ends, and frees its slot.

Real master under gunicorn, real agent, real ffmpeg: the job directory of a running job is
deleted (and its workload ended) while the agent is down.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    kill_workloads,
    master_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job
from tests.integration.test_agent_resilience import realtime_job

# long enough that the agent's restart stays well inside it (else the node goes offline)
NODE_TIMEOUT_S = 20


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[MasterProcess, list[AgentProcess]]]:
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_NODE_TIMEOUT=str(NODE_TIMEOUT_S)))
    agents: list[AgentProcess] = []
    yield master, agents
    for agent in agents:
        stop_process(agent.proc, signal.SIGKILL)
    kill_workloads(tmp_path)
    stop_process(master.proc)
    for agent in agents:  # shown by pytest only when the test failed
        print(f"--- agent ---\n{agent.output()}")
    print(f"--- master ---\n{master.output()}")


def job_dir(agent: AgentProcess, job_id: str) -> Path:
    return agent.state_dir / "jobs" / f"{job_id}.1"


@pytest.mark.slow
def test_a_job_whose_directory_vanished_while_the_agent_was_down_ends_lost(
        tmp_path: Path, farm: tuple[MasterProcess, list[AgentProcess]]) -> None:
    master, agents = farm
    env = agent_env(tmp_path, master, FFRTMP_SLOTS="2")
    agents.append(start_agent(tmp_path, master, env=env))
    gone, kept = realtime_job(master, 300, "gone"), realtime_job(master, 300, "kept")
    for job_id in (gone, kept):
        wait_until(lambda j=job_id: job(master, j)["state"] == "running", 60, f"{job_id} running")
        wait_until(lambda j=job_id: (job_dir(agents[0], j) / "wrapper.json").exists(), 30, "wrapper.json")
    agents[0].proc.kill()
    agents[0].proc.wait(10)
    kill_workloads(job_dir(agents[0], gone))
    shutil.rmtree(job_dir(agents[0], gone))
    agents.append(start_agent(tmp_path, master, env=env))

    lost = wait_until(lambda: (j := job(master, gone))["state"] == "lost" and j,
                      NODE_TIMEOUT_S * 3, "the forgotten attempt to be reconciled")
    assert "no longer knows" in lost["history"][-1]["reason"], lost["history"]
    assert lost["attempts"][-1]["state"] == "lost"
    assert job(master, kept)["state"] == "running"  # listed in every heartbeat: untouched
    # the freed slot takes new work, up to the node's two slots and no further
    new = [realtime_job(master, 300, f"new{i}") for i in range(2)]
    wait_until(lambda: sum(job(master, j)["state"] == "running" for j in new) == 1, 60,
               "one new job on the freed slot")
    assert sorted(job(master, j)["state"] for j in new) == ["queued", "running"]
    [node] = master.session().get(master.url + "/api/v1/nodes", timeout=10).json()["nodes"]
    assert (node["status"], node["running"], node["slots"]) == ("online", 2, 2)
    assert "no longer knows attempt" in master.output()
