"""Outputs appear at their names only when the job succeeded (real master, agent, ffmpeg).

FFmpeg writes each file output, and each VOD playlist, to a hidden temporary name in the
output's directory; the agent moves it into place when the result says the job succeeded,
and removes it otherwise, before it delivers the result.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.layout import JobDir, attempt_name
from tests.conftest import AgentProcess, MasterProcess, start_agent, stop_process
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, media, probe, submit, wait_final

NAMES = ("a.mp4", "a.mkv", "a.m3u8")


def outputs(directory: Path) -> list[dict[str, Any]]:
    return [{"url": f"file://{directory}/{name}", "preset": "h264-360p", "size": "160x120",
             "encoder_preset": "ultrafast"} for name in NAMES]


def leftovers(directory: Path) -> list[str]:
    """Everything in the output directory except HLS segments."""
    return sorted(p.name for p in directory.iterdir() if p.suffix != ".ts")


def start_long_job(master: MasterProcess, agent: AgentProcess, directory: Path) -> str:
    job_id = submit(master, {"input": "testsrc://?duration=600&size=160x120&rate=10&realtime=1",
                             "outputs": outputs(directory)})
    wait_until(lambda: job(master, job_id)["state"] == "running", 60, "the job to run")
    # ffmpeg has written media data (a segment exists) before the job is ended
    wait_until(lambda: list(directory.glob("*.ts")), 60, "a first HLS segment")
    wait_until(lambda: all(p.stat().st_size > 0 for p in directory.iterdir()) and leftovers(directory),
               30, "ffmpeg writing its outputs")
    return job_id


@pytest.mark.slow
def test_canceled_long_job_leaves_nothing_at_the_output_names(master_proc: MasterProcess,
                                                               agent: AgentProcess) -> None:
    directory = media(master_proc) / "canceled"
    job_id = start_long_job(master_proc, agent, directory)
    reply = master_proc.session().post(f"{master_proc.url}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert reply.status_code == 200, reply.text
    done = wait_final(master_proc, job_id, timeout=90)
    assert done["state"] == "canceled", done
    assert leftovers(directory) == []


@pytest.mark.slow
def test_failed_job_leaves_nothing_at_the_output_names(master_proc: MasterProcess,
                                                        agent: AgentProcess) -> None:
    directory = media(master_proc) / "failed"
    job_id = start_long_job(master_proc, agent, directory)
    state = json.loads(next(agent.state_dir.glob(f"jobs/{job_id}.1/wrapper.json")).read_text())
    os.kill(state["pid"], signal.SIGKILL)  # the encoder dies mid-way: a failed workload
    done = wait_final(master_proc, job_id, timeout=90)
    assert done["state"] == "failed", done
    assert done["attempts"][0]["result"]["reason"] == "workload_signaled"
    assert leftovers(directory) == []


def test_succeeded_job_has_its_files_and_no_temporary_left(master_proc: MasterProcess,
                                                          agent: AgentProcess) -> None:
    directory = media(master_proc) / "done"
    job_id = submit(master_proc, {"input": "testsrc://?duration=2&size=160x120&rate=10",
                                  "outputs": outputs(directory)})
    done = wait_final(master_proc, job_id, timeout=90)
    assert done["state"] == "succeeded", done
    assert leftovers(directory) == sorted(NAMES)
    for name in NAMES:
        assert abs(float(probe(directory / name)["format"]["duration"]) - 2.0) < 0.5, name
    playlist = (directory / "a.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist
    assert all(seg.name in playlist for seg in directory.glob("*.ts"))


@pytest.mark.slow
def test_agent_down_between_exit_and_rename_publishes_at_its_next_start(
        tmp_path: Path, master_proc: MasterProcess, agent: AgentProcess) -> None:
    directory = media(master_proc) / "later"
    job_id = submit(master_proc, {"input": "testsrc://?duration=3&size=160x120&rate=10&realtime=1",
                                  "outputs": outputs(directory)})
    files = JobDir(agent.state_dir / "jobs" / attempt_name(job_id, 1))
    # the master's "running" means the start is durable, which comes before the launch: wait
    # for the wrapper's own record of its workload, or the kill may come before any workload
    wait_until(files.wrapper_json.exists, 60, "the wrapper to start the workload")
    stop_process(agent.proc, signal.SIGKILL)  # the wrapper and ffmpeg run on without it
    result_json = files.result_json
    wait_until(result_json.exists, 60, "the wrapper to record the result")
    assert json.loads(result_json.read_text())["exit_code"] == 0
    assert leftovers(directory) == sorted(f".{name}.{job_id}.1.part" for name in NAMES)
    again = start_agent(tmp_path, master_proc, env=agent.env)
    try:
        done = wait_final(master_proc, job_id, timeout=60)
    finally:
        stop_process(again.proc)
    assert done["state"] == "succeeded", done
    assert leftovers(directory) == sorted(NAMES)
