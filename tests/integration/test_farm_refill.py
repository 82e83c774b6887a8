"""A freed slot is refilled before its result is delivered, and never runs two workloads at once.

A real master and a real agent with one slot, real FFmpeg writing files (so each result waits
for its outputs' ffprobe): the agent claims the next job listing the attempt that just ended,
and the master assigns it before that attempt's result lands. The encodes never overlap.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ffrtmp.isotime import parse_iso
from tests.conftest import MasterProcess
from tests.helpers import wait_until
from tests.processes import kill_workloads, start_agent, stop_process


def _ts(text: str) -> float:
    return parse_iso(text).timestamp()


def _jobs(master: MasterProcess, ids: list[str]) -> list[dict[str, Any]]:
    session = master.session()
    return [session.get(f"{master.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]
            for job_id in ids]


def _finished(master: MasterProcess, ids: list[str]) -> list[dict[str, Any]] | None:
    jobs = _jobs(master, ids)
    return jobs if all(j["state"] in ("succeeded", "failed", "canceled", "lost") for j in jobs) else None


def test_the_next_job_is_assigned_before_the_last_result_lands(tmp_path: Path,
                                                                master_proc: MasterProcess) -> None:
    media = Path(master_proc.env["FFRTMP_MEDIA_ROOTS"])
    agent = start_agent(tmp_path, master_proc, FFRTMP_SLOTS="1")
    try:
        session = master_proc.session()
        ids = []
        for n in range(3):
            spec = {"input": "testsrc://?duration=1&size=320x240&rate=25",
                    "outputs": [{"url": f"file://{media}/out/refill-{n}.mp4", "preset": "h264-360p"}]}
            reply = session.post(master_proc.url + "/api/v1/jobs", json=spec, timeout=10)
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["job"]["id"])
        jobs = wait_until(lambda: _finished(master_proc, ids), 120, "three jobs to finish")
    finally:
        stop_process(agent.proc)
        kill_workloads(agent.state_dir)
    assert [j["state"] for j in jobs] == ["succeeded"] * 3, jobs
    runs = sorted(jobs, key=lambda j: _ts(j["attempts"][-1]["assigned_at"]))
    for before, after in itertools.pairwise(runs):
        ran, next_ran = before["attempts"][-1]["result"], after["attempts"][-1]["result"]
        # one slot: the next encode starts only after the last one ended ...
        assert _ts(next_ran["started_at"]) >= _ts(ran["ended_at"]), (ran, next_ran)
        # ... and was assigned before the last result was delivered
        assert _ts(after["attempts"][-1]["assigned_at"]) < _ts(before["finished_at"]), (before, after)
    for n, job in enumerate(runs):
        assert job["attempts"][-1]["result"]["outputs"][0]["duration_s"] > 0  # the probe still reports
        assert (media / "out" / f"refill-{ids.index(job['id'])}.mp4").stat().st_size > 0, n
