"""Real agents and a real master: readiness in the heartbeats (and the agent's one warning when
it stops claiming, one line when it resumes), and planned maintenance (a drained agent stopped
on purpose keeps its jobs: never lost, never offline, re-adopted at its next start)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, media, submit, wait_final
from tests.integration.test_agent_resilience import alive, realtime_job, running_with_workload
from tests.processes import master_env


def node(master: MasterProcess, ref: str) -> dict[str, Any]:
    reply = master.session().get(f"{master.url}/api/v1/nodes/{ref}", timeout=10)
    reply.raise_for_status()
    result: dict[str, Any] = reply.json()["node"]
    return result


def test_a_full_disk_stops_claiming_says_so_once_and_shows_in_the_node(
        master_proc: MasterProcess, tmp_path: Path, agents: list[AgentProcess]) -> None:
    # any real filesystem is fuller than 0.01 %: the threshold trips it, no disk is filled
    agent = start_agent(tmp_path, master_proc, "full", wait_ready=False,
                        FFRTMP_DISK_LIMIT_PERCENT="0.01")
    agents.append(agent)
    shown = wait_until(lambda: (n := node(master_proc, "full"))["ready"] is False and n, 30,
                       "the master to show the node not ready")
    assert shown["status"] == "online"
    assert shown["ready_reason"].startswith("disk_space low: ") and "% used" in shown["ready_reason"]
    job_id = submit(master_proc, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                                  "outputs": [{"url": f"file://{media(master_proc)}/full.mp4",
                                               "preset": "h264-480p"}]})
    wait_until(lambda: node(master_proc, "full")["last_heartbeat"] != shown["last_heartbeat"], 10,
               "another heartbeat")
    assert job(master_proc, job_id)["state"] == "queued"  # nothing claimed while not ready
    warnings = [line for line in agent.output().splitlines() if "not ready: no new jobs" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0].upper() and "disk_space low" in warnings[0]


def test_a_media_store_that_goes_away_and_comes_back_warns_once_and_resumes_once(
        master_proc: MasterProcess, tmp_path: Path, agents: list[AgentProcess],
        webdav_store: Any) -> None:
    agent = start_agent(tmp_path, master_proc, "w1", FFRTMP_MEDIA_STORE_URL=webdav_store.url,
                        FFRTMP_MEDIA_CREDENTIALS_FILE=str(webdav_store.netrc))
    agents.append(agent)
    wait_until(lambda: node(master_proc, "w1")["ready"] is True, 20, "the node ready")
    webdav_store.stop()
    shown = wait_until(lambda: (n := node(master_proc, "w1"))["ready"] is False and n, 30,
                       "the master to show the store unreachable")
    assert shown["ready_reason"].startswith("media unreachable")
    webdav_store.start()
    wait_until(lambda: node(master_proc, "w1")["ready"] is True, 30, "the node ready again")
    lines = agent.output().splitlines()
    assert len([x for x in lines if "not ready: no new jobs until it clears: media unreachable" in x]) == 1
    assert len([x for x in lines if "ready again: claiming jobs" in x]) == 1


def test_a_drained_agent_stopped_for_maintenance_keeps_its_job_and_stays_out_of_offline(
        tmp_path: Path, agents: list[AgentProcess]) -> None:
    # a 2 s node timeout: without maintenance the running job would be lost within seconds
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_NODE_TIMEOUT="2"))
    try:
        env = agent_env(tmp_path, master, "ops-w1", FFRTMP_SHUTDOWN_TIMEOUT="1")
        agent = start_agent(tmp_path, master, env=env)
        agents.append(agent)
        job_id = realtime_job(master, 25, "maint")
        pid = running_with_workload(master, agent, job_id)
        master.session().post(f"{master.url}/api/v1/nodes/ops-w1/drain", timeout=10).raise_for_status()
        wait_until(lambda: "master says drain" in agent.output(), 10, "the agent to hear of the drain")
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(30) == 0
        assert "the master shows this node in maintenance" in agent.output()
        away = node(master, "ops-w1")
        assert (away["status"], away["ready"], away["ready_reason"]) == ("maintenance", False, "maintenance")
        # three node timeouts of silence, checked all along: still maintenance, the job running
        silent_since, until = away["last_heartbeat"], time.monotonic() + 3 * 2
        while time.monotonic() < until:
            assert node(master, "ops-w1")["status"] == "maintenance"
            assert job(master, job_id)["state"] == "running"
            time.sleep(0.5)
        metrics = requests.get(master.metrics_url + "/metrics", timeout=10).text
        assert "ffrtmp_nodes_offline 0.0" in metrics
        assert 'ffrtmp_nodes_by_status{status="maintenance"} 1.0' in metrics
        assert alive(pid), "the workload keeps running while the agent is away"
        assert node(master, "ops-w1")["last_heartbeat"] == silent_since
        again = start_agent(tmp_path, master, env=env)
        agents.append(again)
        back = wait_until(lambda: (n := node(master, "ops-w1"))["status"] != "maintenance" and n, 20,
                          "the node back")
        assert (back["status"], back["draining"]) == ("draining", True)  # drained until undrained
        done = wait_final(master, job_id, timeout=40)
        assert done["state"] == "succeeded" and len(done["attempts"]) == 1
        assert "stopped for maintenance" in master.output()
    finally:
        stop_process(master.proc)
