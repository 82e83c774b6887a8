"""A node is its saved credential: every start refreshes its facts, and a name never merges two agents.

Real master under gunicorn, real agents, real ffmpeg.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    OPERATOR_TOKEN,
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
from tests.integration.test_agent_jobs import job, media, submit, wait_final
from tests.integration.test_agent_resilience import realtime_job
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.slow
EX_CONFIG = 78


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Any]]:
    """Every master and agent a test starts; all stopped, and their workloads ended, after it."""
    procs: list[Any] = []
    yield procs
    for proc in reversed(procs):
        stop_process(proc.proc, signal.SIGKILL)
    kill_workloads(tmp_path)
    for proc in procs:  # shown by pytest only when the test failed
        print(f"--- {proc.log_path.name} ---\n{proc.output()}")


def nodes(master: MasterProcess) -> list[dict[str, Any]]:
    return master.session().get(master.url + "/api/v1/nodes", timeout=10).json()["nodes"]


def saved_identity(agent: AgentProcess) -> dict[str, Any]:
    return json.loads((agent.state_dir / "node.json").read_text())


def running_count(master: MasterProcess, job_ids: list[str]) -> int:
    return sum(job(master, j)["state"] == "running" for j in job_ids)


def test_an_agent_restarted_with_a_new_slot_count_gets_that_many_jobs(tmp_path: Path,
                                                                       started: list[Any]) -> None:
    master = start_master(tmp_path)
    started.append(master)
    agent = start_agent(tmp_path, master, FFRTMP_SLOTS="1")
    started.append(agent)
    [before] = nodes(master)
    assert before["slots"] == 1
    stop_process(agent.proc)
    agent = start_agent(tmp_path, master, FFRTMP_SLOTS="3")  # same state dir, same credential
    started.append(agent)
    [after] = wait_until(lambda: [n for n in nodes(master) if n["slots"] == 3], 30,
                         "the node's new slot count")
    assert after["id"] == before["id"] and saved_identity(agent)["node_id"] == before["id"]
    shown = master.session().get(f"{master.url}/api/v1/nodes/{before['id']}", timeout=10).json()
    assert shown["node"]["slots"] == 3
    cli = run_cli(["nodes", "show", before["id"]], {"FFRTMP_MASTER_URL": master.url,
                                                     "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
                                                     "FFRTMP_CONFIG": str(tmp_path / "no-cli.env")})
    row = cli.out.splitlines()[1].split()
    assert cli.status == 0 and row[:2] == [before["id"], "agent"] and row[4] == "3", cli.out
    assert "  encoders   " in cli.out and "  agent      " in cli.out
    jobs = [realtime_job(master, 120, f"slot{i}") for i in range(4)]
    wait_until(lambda: running_count(master, jobs) == 3, 60, "three jobs running at once")
    assert sum(job(master, j)["state"] == "queued" for j in jobs) == 1


def test_a_second_agent_with_a_live_nodes_name_exits_78_and_the_first_keeps_working(
        tmp_path: Path, started: list[Any]) -> None:
    master = start_master(tmp_path)
    started.append(master)
    first = start_agent(tmp_path, master, "first", FFRTMP_NODE_NAME="twin")
    started.append(first)
    identity = saved_identity(first)
    root = media(master)
    for attempt in range(2):  # as systemd would, had it restarted the second one
        second = start_agent(tmp_path, master, "second", wait_ready=False, FFRTMP_NODE_NAME="twin")
        started.append(second)
        assert second.proc.wait(60) == EX_CONFIG, second.output()
        jobs = [submit(master, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                                "outputs": [{"url": f"file://{root}/twin/{attempt}-{i}.mp4",
                                             "preset": "h264-480p", "encoder_preset": "ultrafast"}]})
                for i in range(2)]
        for job_id in jobs:
            done = wait_final(master, job_id)
            assert done["state"] == "succeeded" and len(done["attempts"]) == 1, done
    assert "another node holds this node's name" in second.output()
    assert "node_name_in_use" not in first.output()
    assert first.output().count("registered as") == 1, first.output()
    assert "registering again" not in first.output()
    assert saved_identity(first) == identity
    assert [(n["id"], n["name"]) for n in nodes(master)] == [(identity["node_id"], "twin")]


def test_a_reimaged_host_takes_over_its_silent_nodes_name(tmp_path: Path, started: list[Any]) -> None:
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_NODE_TIMEOUT="3"))
    started.append(master)
    old = start_agent(tmp_path, master, "old", FFRTMP_NODE_NAME="host")
    started.append(old)
    node_id = saved_identity(old)["node_id"]
    stop_process(old.proc, signal.SIGKILL)
    wait_until(lambda: nodes(master)[0]["status"] == "offline", 30, "the old node to go offline")
    new = start_agent(tmp_path, master, "new", FFRTMP_NODE_NAME="host")  # a wiped state dir
    started.append(new)
    assert saved_identity(new)["node_id"] == node_id
    assert [n["status"] for n in nodes(master)] == ["online"]
    # the old disk comes back: its credential was revoked, and the name is live again
    back = start_agent(tmp_path, master, "old", wait_ready=False,
                       env=agent_env(tmp_path, master, "old", FFRTMP_NODE_NAME="host"))
    started.append(back)
    assert back.proc.wait(60) == EX_CONFIG, back.output()
    assert "another node holds this node's name" in back.output()
    assert saved_identity(new)["node_id"] == node_id and new.ready()
