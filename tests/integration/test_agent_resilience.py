"""The worker's headline property: agents come and go, encodes keep running, nothing is re-run."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
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


def realtime_job(master: MasterProcess, seconds: int, name: str) -> str:
    return submit(master, {"input": f"testsrc://?duration={seconds}&size=160x120&rate=10&realtime=1",
                           "outputs": [{"url": f"file://{media(master)}/rt/{name}.mp4",
                                        "preset": "h264-480p", "encoder_preset": "ultrafast"}]})


def wrapper_state(agent: AgentProcess) -> dict[str, Any]:
    [job_dir] = agent.job_dirs()
    return json.loads((job_dir / "wrapper.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] not in "ZX"


def running_with_workload(master: MasterProcess, agent: AgentProcess, job_id: str) -> int:
    wait_until(lambda: job(master, job_id)["state"] == "running", 30, "job running")
    state = wait_until(lambda: wrapper_state(agent), 10, "wrapper.json")
    assert alive(state["pid"])
    return state["pid"]


def test_sigterm_waits_for_a_20s_job_within_the_bound(master_proc: MasterProcess, tmp_path: Path,
                                                     agents: list[AgentProcess]) -> None:
    agent = start_agent(tmp_path, master_proc)
    agents.append(agent)
    job_id = realtime_job(master_proc, 20, "term")
    pid = running_with_workload(master_proc, agent, job_id)
    stopped = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(40) == 0
    assert time.monotonic() - stopped <= 30 + 5
    assert not alive(pid)  # it finished on its own: the agent waited for it, killing nothing
    done = job(master_proc, job_id)
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1
    assert "shutdown reason=SIGTERM" in agent.output() and "still_running=0" in agent.output()


def test_job_longer_than_the_shutdown_bound_outlives_the_agent(master_proc: MasterProcess, tmp_path: Path,
                                                              agents: list[AgentProcess]) -> None:
    env = agent_env(tmp_path, master_proc, FFRTMP_SHUTDOWN_TIMEOUT="30")
    agent = start_agent(tmp_path, master_proc, env=env)
    agents.append(agent)
    job_id = realtime_job(master_proc, 40, "long")
    pid = running_with_workload(master_proc, agent, job_id)
    stopped = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(45) == 0
    assert 29 <= time.monotonic() - stopped <= 35
    assert "still_running=1" in agent.output()
    assert alive(pid), "the workload must keep running after the agent stops"
    assert job(master_proc, job_id)["state"] == "running"
    again = start_agent(tmp_path, master_proc, env=env, name="agent")
    agents.append(again)
    done = wait_final(master_proc, job_id, timeout=40)
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1


def test_kill_9_of_the_agent_leaves_the_encode_running(master_proc: MasterProcess, tmp_path: Path,
                                                      agents: list[AgentProcess]) -> None:
    env = agent_env(tmp_path, master_proc)
    agent = start_agent(tmp_path, master_proc, env=env)
    agents.append(agent)
    job_id = realtime_job(master_proc, 20, "kill9")
    pid = running_with_workload(master_proc, agent, job_id)
    wrapper_pid = wrapper_state(agent)["wrapper_pid"]
    agent.proc.kill()
    agent.proc.wait(10)
    assert alive(pid) and alive(wrapper_pid)
    again = start_agent(tmp_path, master_proc, env=env)
    agents.append(again)
    assert "re-adopting a running job" in again.output()
    done = wait_final(master_proc, job_id, timeout=40)
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1
    assert done["attempts"][0]["result"]["exit_code"] == 0


def test_workload_whose_wrapper_died_is_attached_by_the_next_agent(master_proc: MasterProcess,
                                                                   tmp_path: Path,
                                                                   agents: list[AgentProcess]) -> None:
    env = agent_env(tmp_path, master_proc)
    agent = start_agent(tmp_path, master_proc, env=env)
    agents.append(agent)
    job_id = realtime_job(master_proc, 30, "orphan")  # outlasts a restarted agent's probe on a loaded machine
    pid = running_with_workload(master_proc, agent, job_id)
    agent.proc.kill()
    agent.proc.wait(10)
    os.kill(wrapper_state(agent)["wrapper_pid"], signal.SIGKILL)
    assert alive(pid)
    again = start_agent(tmp_path, master_proc, env=env)
    agents.append(again)
    wait_until(lambda: "attached" in again.output(), 30, "the agent to attach to the orphan")
    done = wait_final(master_proc, job_id, timeout=60)
    result = done["attempts"][0]["result"]
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1
    assert result["reason"] == "observed_to_completion" and result["exit_code"] is None


def test_master_away_for_60s_while_a_job_finishes(tmp_path: Path, agents: list[AgentProcess]) -> None:
    master = start_master(tmp_path)
    env = master.env
    try:
        agent = start_agent(tmp_path, master)
        agents.append(agent)
        job_id = realtime_job(master, 15, "away")
        running_with_workload(master, agent, job_id)
        stop_process(master.proc)
        down_at = time.monotonic()
        [job_dir] = agent.job_dirs()

        def metric(name: str) -> float:
            text = requests.get(agent.url + "/metrics", timeout=5).text
            return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))

        wait_until((job_dir / "result.json").exists, 30, "the job to finish while the master is away")
        wait_until(lambda: metric("worker_results_spooled") == 1.0, 30, "the result to be spooled")
        wait_until(lambda: metric("worker_heartbeat_failures_total") >= 3, 60, "heartbeat failures counted")
        ready = requests.get(agent.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["master"] in ("unreachable", "timeout")
        wait_until(lambda: time.monotonic() - down_at >= 60, 70, "60 s without a master", interval=1)
        master = start_master(tmp_path, env, name="master-again")
        # the returning master may first call the silent node's job lost; the spooled result
        # for the same attempt then settles it
        done = wait_until(lambda: (j := job(master, job_id))["state"] == "succeeded" and j, 60,
                          "the spooled result to be delivered")
        assert len(done["attempts"]) == 1, "nothing may be re-run"
        wait_until(lambda: metric("worker_results_spooled") == 0.0, 30, "the spool to drain")
    finally:
        stop_process(master.proc)
        print(f"--- master ---\n{master.output()}")


def test_cancel_of_a_running_job(master_proc: MasterProcess, tmp_path: Path,
                                 agents: list[AgentProcess]) -> None:
    agent = start_agent(tmp_path, master_proc)
    agents.append(agent)
    job_id = realtime_job(master_proc, 60, "cancel")
    pid = running_with_workload(master_proc, agent, job_id)
    ops = master_proc.session()
    ops.post(f"{master_proc.url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    done = wait_final(master_proc, job_id, timeout=30)
    assert done["state"] == "canceled"
    assert not alive(pid)
    result = done["attempts"][0]["result"]
    assert result["reason"] == "canceled" and result["platform_sla"] is True
    log = tmp_path / "log" / "wrapper" / "wrapper.log"
    # the agent delivers on result.json, which the wrapper writes before its JOB line
    wait_until(lambda: f"JOB {job_id}" in log.read_text(), 10, "the wrapper's JOB line")
    assert "reason=canceled" in log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_work_dir_makes_the_agent_unready_and_stops_claims(master_proc: MasterProcess,
                                                               tmp_path: Path,
                                                               agents: list[AgentProcess]) -> None:
    import subprocess

    env = agent_env(tmp_path, master_proc)
    work = Path(env["FFRTMP_WORK_DIR"])
    work.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(work)], check=True)
    try:
        agent = start_agent(tmp_path, master_proc, env=env)
        agents.append(agent)
        filler = work / "filler"
        filler.write_bytes(b"\0" * (int(7.6 * 2**20)))
        filled_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ready = requests.get(agent.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["disk_space"].startswith("low: ")
        ops = master_proc.session()

        def heartbeat_after(moment: str) -> str | None:
            seen = ops.get(master_proc.url + "/api/v1/nodes", timeout=10).json()["nodes"][0]["last_heartbeat"]
            return seen if seen > moment else None

        # a loop pass that heartbeats after the fill also checks readiness before any claim,
        # and the claim of the pass before it has returned by then: the loop is sequential
        wait_until(lambda: heartbeat_after(filled_at), 10, "a heartbeat after the disk filled")
        job_id = submit(master_proc, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                                      "outputs": [{"url": f"file://{media(master_proc)}/disk.mp4",
                                                   "preset": "h264-480p"}]})
        submitted = job(master_proc, job_id)["created_at"]
        wait_until(lambda: heartbeat_after(submitted), 10, "another heartbeat while not ready")
        assert job(master_proc, job_id)["state"] == "queued"
        assert "worker_ready 0.0" in requests.get(agent.url + "/metrics", timeout=5).text
        filler.unlink()
        assert wait_final(master_proc, job_id)["state"] == "succeeded"
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)
