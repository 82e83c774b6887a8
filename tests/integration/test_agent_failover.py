"""A real agent given two masters on one PostgreSQL keeps its encode when its master is killed.

kill -9 of the master the agent uses, while a real (short, realtime) encode runs: the agent
moves to the other master at once, the job succeeds there with one attempt and one workload
launch, and the agent's /metrics and /ready say which master it uses now.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    kill_workloads,
    master_env,
    postgres_schema_url,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, media, probe, wait_final
from tests.integration.test_agent_resilience import realtime_job
from tests.unit.test_client_failover import kill_9


@pytest.fixture
def two_masters(tmp_path: Path, postgres_server: str) -> Iterator[list[MasterProcess]]:
    """Two real masters over one PostgreSQL schema, sharing one media root."""
    database = postgres_schema_url(postgres_server)
    masters: list[MasterProcess] = []
    try:
        for name in ("m1", "m2"):
            directory = tmp_path / name
            directory.mkdir()
            shared = {"FFRTMP_MEDIA_ROOTS": masters[0].env["FFRTMP_MEDIA_ROOTS"]} if masters else {}
            env = master_env(directory, FFRTMP_DATABASE=database, **shared)
            masters.append(start_master(directory, env, name=name))
        yield masters
    finally:
        for master in masters:
            stop_process(master.proc)
            print(f"--- {master.log_path.name} ---\n{master.output()}")


def master_info(agent: AgentProcess) -> dict[str, float]:
    text = requests.get(agent.url + "/metrics", timeout=5).text
    return {url: float(value) for url, value in
            re.findall(r'^worker_master_info\{url="([^"]+)"\} (\S+)$', text, re.MULTILINE)}


def launched(agent: AgentProcess) -> float:
    text = requests.get(agent.url + "/metrics", timeout=5).text
    found = re.search(r"^worker_jobs_launched_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def test_kill_9_of_the_agents_master_during_an_encode(tmp_path: Path,
                                                      two_masters: list[MasterProcess]) -> None:
    m1, m2 = two_masters
    env = agent_env(tmp_path, m1, FFRTMP_MASTER_URL=f"{m1.url},{m2.url}")
    agent = start_agent(tmp_path, m1, env=env)
    try:
        assert master_info(agent) == {m1.url: 1.0, m2.url: 0.0}
        job_id = realtime_job(m2, 8, "failover")  # either master takes the submit: one queue
        wait_until(lambda: job(m2, job_id)["state"] == "running", 30, "the encode running")
        kill_9(m1)
        wait_until(lambda: master_info(agent) == {m1.url: 0.0, m2.url: 1.0}, 20,
                   "the agent on the other master")
        assert agent.ready(), "/ready: one master answering is enough"
        done = wait_final(m2, job_id, timeout=60)
        assert done["state"] == "succeeded", done
        assert len(done["attempts"]) == 1 and launched(agent) == 1.0
        assert float(probe(media(m2) / "rt" / "failover.mp4")["format"]["duration"]) > 7
        switches = [line for line in agent.output().splitlines() if "switched masters" in line]
        assert len(switches) == 1 and f"{m1.url} -> {m2.url}" in switches[0], switches
    finally:
        stop_process(agent.proc)
        kill_workloads(agent.state_dir)
        print(f"--- agent ---\n{agent.output()}")


def test_an_agent_whose_first_master_is_down_registers_and_is_ready_on_the_next(
        tmp_path: Path, master_proc: MasterProcess) -> None:
    from tests.helpers import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    env = agent_env(tmp_path, master_proc, FFRTMP_MASTER_URL=f"{closed}, {master_proc.url}")
    agent = start_agent(tmp_path, master_proc, env=env)  # waits for /ready 200
    try:
        ready = requests.get(agent.url + "/ready", timeout=5).json()
        assert ready["checks"]["master"] == "reachable"
        assert master_info(agent) == {closed: 0.0, master_proc.url: 1.0}
        assert f"master={closed},{master_proc.url} " in agent.output()
    finally:
        stop_process(agent.proc)
        print(f"--- agent ---\n{agent.output()}")
