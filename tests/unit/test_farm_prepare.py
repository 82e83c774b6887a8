"""Recording an assignment never waits on ffprobe: the input's length (only for progress
percentages) is probed in the background once the wrapper is on its way, and again for a
running job re-adopted after a restart. Real FFmpeg files, a real job table.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ffrtmp import jobspec
from ffrtmp.agent import jobs as jobs_module
from ffrtmp.agent.jobs import JobTable
from ffrtmp.files import write_json_atomic


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "media" / "in.mp4"
    path.parent.mkdir()
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=25:duration=1.6", "-c:v", "libx264", "-preset",
                    "ultrafast", str(path)], check=True, timeout=60)
    return path


def _table(tmp_path: Path) -> JobTable:
    return JobTable(str(tmp_path / "state"), log_dir=str(tmp_path / "log"), log_level="INFO",
                    cancel_grace_s=5, media_roots=(str(tmp_path / "media"),), keep_delivered=10,
                    keep_delivered_s=3600, standby=0)


def _assignment(source: Path) -> dict[str, object]:
    spec = {"input": f"file://{source}",
            "outputs": [{"url": f"file://{source.parent}/out.mp4", "preset": "h264-360p"}]}
    return {"job_id": "j-000000000001", "attempt": 1, "attempt_token": "t",
            "spec": jobspec.parse(spec, (str(source.parent),)).to_dict()}


def _wait_duration(job: jobs_module.LocalJob) -> float | None:
    deadline = time.monotonic() + 30
    while job.expected_duration_s is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return job.expected_duration_s


def test_prepare_runs_no_probe(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(path: str) -> float | None:
        raise AssertionError(f"probed {path} while recording the assignment")

    monkeypatch.setattr(jobs_module, "probe_duration_s", no_probe)
    table = _table(tmp_path)
    assignment = _assignment(source)
    job = table.prepare(assignment, jobspec.parse(assignment["spec"], table.media_roots))
    assert job.expected_duration_s is None and job.files.assignment.exists()


def test_the_length_is_learnt_in_the_background(tmp_path: Path, source: Path) -> None:
    table = _table(tmp_path)
    assignment = _assignment(source)
    spec = jobspec.parse(assignment["spec"], table.media_roots)
    job = table.prepare(assignment, spec)
    table.learn_duration(job, spec)
    assert _wait_duration(job) == pytest.approx(1.6, abs=0.1)


def test_a_readopted_running_job_learns_its_length_again(tmp_path: Path, source: Path) -> None:
    first = _table(tmp_path)
    assignment = _assignment(source)
    running = first.prepare(assignment, jobspec.parse(assignment["spec"], first.media_roots))
    # launched (a job with its assignment only never began: it awaits its start's answer)
    write_json_atomic(running.files.launched, {"at": "now"})
    again = _table(tmp_path)
    again.adopt()
    (job,) = again.jobs.values()
    assert _wait_duration(job) == pytest.approx(1.6, abs=0.1)
