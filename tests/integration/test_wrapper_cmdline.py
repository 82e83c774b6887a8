"""The wrapper's command line: no value a client chose can be read as an option.

A real master, a real agent, real wrappers and a real ffmpeg run jobs whose every free-text
field (intent, input and output paths, HLS names) looks like an option; the builder and the
parser are also checked directly for the fields a client cannot reach (node, directories).
Every wrapper log line of those jobs names its job and its node, and so does every agent line
about a job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ffrtmp.wrapper import cmdline
from tests.conftest import AgentProcess, MasterProcess
from tests.integration.test_agent_jobs import make_source, media, probe, submit, wait_final

HOSTILE = ["-x", "--", "--job-id=evil", "-- --pid=1", "--intent", "-h", "=", "--help"]


def test_every_value_survives_the_round_trip_however_it_looks() -> None:
    for value in HOSTILE:
        call = cmdline.WrapperCall(
            mode="attach", job_id="job-1", attempt=2, job_dir=f"/j/{value}", state_dir=value,
            log_dir=value, cancel_grace_s=1.5, node=value, intent=value, pid=42,
            start_ticks=7)
        argv = call.argv()
        assert argv[:5] == [argv[0], "-m", "ffrtmp", "wrapper", "attach"]
        parsed = cmdline.parse("attach", argv[5:])
        assert isinstance(parsed, cmdline.WrapperCall), (value, parsed)
        assert parsed == call, value
    run = cmdline.WrapperCall(mode="run", job_id="j", attempt=1, job_dir="/j", state_dir="/s",
                              log_dir="/l", cancel_grace_s=0.0, node="-n", intent="--",
                              cpu_max="50000 100000", memory_max=2**30,
                              command=("ffmpeg", "--", "-i", "--intent=x"))
    assert cmdline.parse("run", run.argv()[5:]) == run


@pytest.mark.slow
def test_option_like_fields_reach_ffmpeg_as_values(master_proc: MasterProcess,
                                                   agent: AgentProcess) -> None:
    root = media(master_proc)
    make_source(root / "-in" / "--i.mp4", seconds=1)
    jobs = {}
    for index, intent in enumerate(HOSTILE):
        out = root / f"-o{index}" / "--"
        jobs[intent] = submit(master_proc, {
            "input": f"{root}/-in/--i.mp4" if index % 2 else "testsrc://?duration=1&size=160x120&rate=10",
            "intent": intent,
            "outputs": [{"url": f"{out}/-x.mp4", "preset": "h264-360p", "size": "160x120",
                         "encoder_preset": "ultrafast"},
                        {"url": f"file://{out}/--intent=y.mkv", "preset": "h264-360p",
                         "size": "160x120", "encoder_preset": "ultrafast"},
                        {"url": f"{out}/-.m3u8", "preset": "h264-360p", "size": "160x120",
                         "encoder_preset": "ultrafast"}]})
    for index, (intent, job_id) in enumerate(jobs.items()):
        done = wait_final(master_proc, job_id, timeout=120)
        result = done["attempts"][0]["result"]
        assert done["state"] == "succeeded", (intent, result)
        assert result["platform_sla"] is True, (intent, result)
        recorded = json.loads(next(agent.state_dir.glob(f"jobs/{job_id}.1/result.json")).read_text())
        assert recorded["intent"] == intent
        out = root / f"-o{index}" / "--"
        for name in ("-x.mp4", "--intent=y.mkv", "-.m3u8"):
            assert float(probe(out / name)["format"]["duration"]) > 0.5, (intent, name)
    _every_wrapper_line_names_job_and_node(master_proc, agent, set(jobs.values()))


def _every_wrapper_line_names_job_and_node(master: MasterProcess, agent: AgentProcess,
                                          job_ids: set[str]) -> None:
    nodes = master.session().get(master.url + "/api/v1/nodes", timeout=10).json()["nodes"]
    node_id = nodes[0]["id"]
    log = Path(agent.env["FFRTMP_LOG_DIR"]) / "wrapper" / "wrapper.log"
    lines = log.read_text().splitlines()
    assert len(lines) >= 2 * len(job_ids)
    seen = set()
    for line in lines:
        job = re.search(r" job=(\S+)", line)
        assert job is not None and job.group(1) in job_ids, line
        assert f" node={node_id}" in line, line
        seen.add(job.group(1))
    assert seen == job_ids
    agent_log = Path(agent.env["FFRTMP_LOG_DIR"]) / "worker" / "agent.log"
    about_jobs = [line for line in agent_log.read_text().splitlines() if " job=" in line]
    assert about_jobs and all(f" node={node_id}" in line for line in about_jobs), about_jobs
