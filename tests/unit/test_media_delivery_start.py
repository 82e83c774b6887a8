"""A claim asks whether a result is ready without beginning its delivery: the probes and
uploads of a job that just ended stay off the path of the next job's launch.

A real ``MediaPlane`` over a local output (no media store); the delivery that begins probes
an output that was never written and ends abandoned, which is all this test needs to see.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ffrtmp import jobspec
from ffrtmp.agent.jobs import LocalJob
from ffrtmp.agent.media_plane import UPLOAD, MediaPlane
from ffrtmp.media.credentials import Credentials
from ffrtmp.wrapper.result import Result


def test_a_delivery_not_begun_is_begun_only_when_asked(tmp_path: Path) -> None:
    spec = jobspec.parse({"input": "testsrc://?duration=1&size=160x120&rate=10",
                          "outputs": [{"url": f"file://{tmp_path}/out.mp4", "preset": "h264-480p"}]},
                         (str(tmp_path),))
    job = LocalJob("j-000000000001", 1, "token", spec.to_dict(), tmp_path / "jobs" / "j-1.1")
    job.dir.mkdir(parents=True)
    result = Result(job_id=job.job_id, attempt=1, pid=1, mode="run",
                    start_time="2026-12-04T00:00:00Z", end_time="2026-12-04T00:00:01Z",
                    runtime_s=1.0, exit_code=0, signal=None, platform_sla=True, reason="")
    media = MediaPlane(store_url=None, credentials=Credentials(), work_dir=str(tmp_path / "work"),
                       wake=threading.Event())
    key = (*job.key, UPLOAD)
    assert media.delivered(job, spec, result, start=False) is None
    assert media.transfers.get(key) is None  # nothing began
    media.delivered(job, spec, result)
    task = media.transfers.get(key)
    assert task is not None  # begun, in the background
