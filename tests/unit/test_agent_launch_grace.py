"""A wrapper still starting when its agent died is not taken for lost by the restarted agent.

The grace a wrapper gets to write its first record is counted from ``launched.json``, which
survives the restart; counting from the restarted agent's own clock ended such a job
``lost_track`` at once (seen when a split job's agent was killed mid-launch).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ffrtmp.agent.jobs import WRAPPER_START_GRACE_S, LocalJob, _since_launch_s
from ffrtmp.files import write_json_atomic


def _job(tmp_path: Path) -> LocalJob:
    return LocalJob("j-1", 1, "token", {}, tmp_path)


def test_a_just_launched_job_found_after_a_restart_is_within_its_grace(tmp_path: Path) -> None:
    job = _job(tmp_path)
    write_json_atomic(job.files.launched, {"at": "now"})
    assert _since_launch_s(job) < WRAPPER_START_GRACE_S


def test_a_launch_older_than_the_grace_is_past_it(tmp_path: Path) -> None:
    job = _job(tmp_path)
    write_json_atomic(job.files.launched, {"at": "then"})
    past = time.time() - WRAPPER_START_GRACE_S - 5
    os.utime(job.files.launched, (past, past))
    assert _since_launch_s(job) > WRAPPER_START_GRACE_S


def test_a_job_never_marked_launched_has_no_grace(tmp_path: Path) -> None:
    assert _since_launch_s(_job(tmp_path)) == float("inf")
