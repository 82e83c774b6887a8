"""The agent's state on disk: unreadable job directories are quarantined, secrets are private."""

from __future__ import annotations

import json
import signal
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    kill_workloads,
    start_agent,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, media, submit, wait_final

QUICK = {"input": "testsrc://?duration=1&size=160x120&rate=10"}


def quick_job(master: MasterProcess, name: str) -> str:
    return submit(master, {**QUICK, "outputs": [{"url": f"file://{media(master)}/state/{name}.mp4",
                                                 "preset": "h264-480p", "encoder_preset": "ultrafast"}]})


def running_attempts(master: MasterProcess, node: dict[str, str], count: int) -> list[dict[str, Any]]:
    """Attempts the master counts as running on the stopped agent's node, claimed and started
    with its own credential, as the agent would have before it went down."""
    for i in range(count):
        quick_job(master, f"held{i}")
    session = master.session(node["credential"])
    base = f"{master.url}/api/v1"
    reply = session.post(f"{base}/nodes/{node['node_id']}/claim", json={"slots": count}, timeout=10)
    assignments: list[dict[str, Any]] = reply.json()["assignments"]
    assert len(assignments) == count, reply.text
    for a in assignments:
        started = session.post(f"{base}/jobs/{a['job_id']}/start",
                               json={"attempt_token": a["attempt_token"]}, timeout=10)
        assert started.ok, started.text
    return assignments


def _result(data: Any) -> Callable[[Path], None]:
    return lambda d: (d / "result.json").write_bytes(data)


def _assignment_without(key: str) -> Callable[[Path], None]:
    def corrupt(d: Path) -> None:
        data = json.loads((d / "assignment.json").read_text())
        del data[key]
        (d / "assignment.json").write_text(json.dumps(data))
    return corrupt


# how a directory is broken, and the file the reported reason must name
CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_result(b'{"job_id": "j-1", "attem'), "result.json"),
    "list": (_result(b"[]"), "result.json"),
    "empty_object": (_result(b"{}"), "result.json"),
    "not_utf8": (_result(b'{"reason": "\xff\xfe\xfa"}'), "result.json"),
    "no_spec": (_assignment_without("spec"), "assignment.json"),
    "wrapper_list": (lambda d: (d / "wrapper.json").write_bytes(b"[]"), "wrapper.json"),
}


@pytest.mark.slow
def test_unreadable_job_directories_are_quarantined_and_reported(master_proc: MasterProcess,
                                                                 tmp_path: Path) -> None:
    from ffrtmp.agent.jobs import JobTable
    from ffrtmp.isotime import iso, utc_now
    from ffrtmp.wrapper.result import COMPLETED, Result

    env = agent_env(tmp_path, master_proc, FFRTMP_SLOTS="8")
    agent = start_agent(tmp_path, master_proc, env=env)
    stop_process(agent.proc)
    node = json.loads((agent.state_dir / "node.json").read_text())
    names = [*CORRUPTIONS, "no_token", "healthy"]
    assignments = dict(zip(names, running_attempts(master_proc, node, len(names)), strict=True))
    table = JobTable(str(agent.state_dir), log_dir=env["FFRTMP_LOG_DIR"], log_level="info",
                     cancel_grace_s=10, media_roots=(str(media(master_proc)),),
                     keep_delivered=100, keep_delivered_s=3600)
    dirs = {name: table.prepare(a, None).dir for name, a in assignments.items()}
    now = iso(utc_now())
    for name in ("truncated", "list", "empty_object", "not_utf8", "healthy"):
        Result(job_id=assignments[name]["job_id"], attempt=1, pid=None, mode="run", start_time=now,
               end_time=now, runtime_s=1.0, exit_code=0, signal=None, platform_sla=True,
               reason=COMPLETED).write(dirs[name])
    for name, (corrupt, _) in CORRUPTIONS.items():
        corrupt(dirs[name])
    _assignment_without("attempt_token")(dirs["no_token"])
    (agent.state_dir / "jobs" / "not-a-job").mkdir()
    cut_short = agent.state_dir / "jobs" / "j-0badc1a1m000.1"  # prepare() died after its mkdir
    cut_short.mkdir()

    again = start_agent(tmp_path, master_proc, env=env)
    try:
        assert requests.get(again.url + "/health", timeout=5).status_code == 200
        for name, (_, file_name) in CORRUPTIONS.items():
            job_id = assignments[name]["job_id"]
            # a slow start may outlast the node timeout: the master may first call these
            # attempts lost, and the agent's report of the same attempt then settles them
            done = wait_until(lambda job_id=job_id: (j := job(master_proc, job_id))["state"] == "failed"
                              and j, 60, f"the {name} attempt reported failed")
            result = done["attempts"][0]["result"]
            assert result["platform_sla"] is False, (name, result)
            assert result["reason"].startswith(f"job_dir_unreadable: {file_name}"), (name, result)
            lines = [line for line in again.output().splitlines()
                     if "quarantined" in line and f"job={job_id}" in line]
            assert len(lines) == 1 and " ERROR " in lines[0], (name, lines)
            assert f"node={node['node_id']}" in lines[0]
        healthy = assignments["healthy"]["job_id"]
        wait_until(lambda: job(master_proc, healthy)["state"] == "succeeded", 60, "the healthy result")
        quarantine = sorted(p.name for p in (again.state_dir / "quarantine").iterdir())
        expected = sorted([*(dirs[n].name for n in [*CORRUPTIONS, "no_token"]), "not-a-job"])
        assert quarantine == expected
        assert job(master_proc, assignments["no_token"]["job_id"])["state"] in ("running", "lost")
        assert "not-a-job" in again.output()
        assert not cut_short.exists() and "removed the empty job directory j-0badc1a1m000.1" in again.output()
        assert wait_final(master_proc, quick_job(master_proc, "after"))["state"] == "succeeded"
        assert again.proc.poll() is None
    finally:
        stop_process(again.proc, signal.SIGKILL)
        kill_workloads(again.state_dir / "jobs")  # quarantine/ holds a corrupt wrapper.json
        print(f"--- agent ---\n{again.output()}")


def test_every_file_holding_a_secret_is_private(master_proc: MasterProcess, agent: AgentProcess) -> None:
    done = wait_final(master_proc, quick_job(master_proc, "secret"))
    assert done["state"] == "succeeded"
    wait_until(lambda: list(agent.state_dir.glob("jobs/*/delivered.json")), 10, "the delivery")
    node = json.loads((agent.state_dir / "node.json").read_text())
    [job_dir] = agent.job_dirs()
    token = json.loads((job_dir / "assignment.json").read_text())["attempt_token"]
    secrets = [node["credential"].encode(), token.encode()]
    holding = []
    for path in agent.state_dir.rglob("*"):
        if path.is_file() and any(s in path.read_bytes() for s in secrets):
            holding.append(path.relative_to(agent.state_dir).as_posix())
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    assert sorted(holding) == sorted(["node.json", f"jobs/{job_dir.name}/assignment.json"])
