"""Where the worker keeps things on disk: the state dir and its job directories.

The agent creates a job directory per attempt and the wrapper fills it; the agent reads what
the wrapper wrote, even across restarts of either. Both find every file through this one
description, so they never disagree about a name.

``<state_dir>/jobs/<job_id>.<attempt>/`` holds ``assignment.json`` (the agent, before anything
runs), ``wrapper.json``, ``wrapper.out``, ``output.log``, ``progress.txt`` and ``result.json``
(the wrapper), and ``delivered.json`` (the agent, once the master has the result).
``start_pending.json`` (the agent) marks an assignment whose start went unanswered (its reply
lost in an outage, or the agent stopped before it came): nothing is launched until the master
confirms that start, and the job is forgotten if the master refuses it. For the
media plane the agent adds ``fetching.json`` (the start is confirmed and the remote input is
being staged), ``fetched.json`` (it is staged), ``launched.json``
(written just before the wrapper starts, so a restart never starts it twice) and
``uploads.json`` (the outputs delivered so far, so an upload resumes where it stopped).

Media itself goes to the work dir (FFRTMP_WORK_DIR, scratch space whose disk gates readiness):
``<work_dir>/<job_id>.<attempt>/inbox/`` holds a staged input, ``outbox/`` what FFmpeg writes
for outputs that are uploaded; both are removed once the outputs are delivered.
``<state_dir>/wrapper/`` holds the counters every wrapper shares; ``<state_dir>/quarantine/``
the job directories nobody could read; ``<state_dir>/node.json`` the node's credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class _Entry:
    """A fixed name under a directory object's ``path``: declared once, read as a Path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, owner: _Directory, _type: type | None = None) -> Path:
        return owner.path / self.name


@dataclass(frozen=True)
class _Directory:
    path: Path


class JobDir(_Directory):
    """The files of one attempt's directory."""

    assignment = _Entry("assignment.json")
    wrapper_json = _Entry("wrapper.json")
    wrapper_out = _Entry("wrapper.out")
    output_log = _Entry("output.log")
    progress = _Entry("progress.txt")
    result_json = _Entry("result.json")
    delivered = _Entry("delivered.json")
    fetching = _Entry("fetching.json")
    fetched = _Entry("fetched.json")
    launched = _Entry("launched.json")
    uploads = _Entry("uploads.json")
    start_pending = _Entry("start_pending.json")


class ScratchDir(_Directory):
    """One attempt's media in the work dir."""

    inbox = _Entry("inbox")
    outbox = _Entry("outbox")


class WorkDir(_Directory):
    """The worker's scratch space (FFRTMP_WORK_DIR)."""

    def job(self, job_id: str, attempt: int) -> ScratchDir:
        return ScratchDir(self.path / attempt_name(job_id, attempt))


class CountersDir(_Directory):
    """``<state_dir>/wrapper/``: the counters every wrapper adds to, under one lock."""

    counters = _Entry("counters.json")
    lock = _Entry("counters.lock")
    violations = _Entry("violations.json")


class StateDir(_Directory):
    """The worker's state dir (FFRTMP_STATE_DIR)."""

    jobs = _Entry("jobs")
    quarantine = _Entry("quarantine")
    node_json = _Entry("node.json")

    @property
    def wrapper(self) -> CountersDir:
        return CountersDir(self.path / "wrapper")

    def job(self, job_id: str, attempt: int) -> JobDir:
        return JobDir(self.jobs / attempt_name(job_id, attempt))


def attempt_name(job_id: str, attempt: int) -> str:
    """An attempt's directory name, the same in the state dir and the work dir."""
    return f"{job_id}.{attempt}"
