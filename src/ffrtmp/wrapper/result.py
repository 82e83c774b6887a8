"""Layer 1: the immutable result of one job attempt, and its one-line summary (layer 3).

``platform_sla`` answers "did the platform keep its own promises?", not "did the encode
work?". A workload that exits non-zero on bad input is a failed job with the SLA met; the SLA
fails only when we could not start it, lost track of it, could not apply the limits that
were asked for, or could not record its result.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffrtmp.files import read_json, tail, write_json_atomic
from ffrtmp.layout import JobDir
from ffrtmp.progress import reached_end
from ffrtmp.wrapper.cmdline import Mode
from ffrtmp.wrapper.signals import signal_name

COMPLETED = "completed_successfully"
WORKLOAD_FAILED = "workload_failed"
WORKLOAD_SIGNALED = "workload_signaled"
CANCELED = "canceled"
OBSERVED = "observed_to_completion"
START_FAILED = "start_failed"
LIMITS_NOT_APPLIED = "limits_not_applied"
LOST_TRACK = "lost_track"
RESULT_NOT_RECORDED = "result_not_recorded"
OUTPUT_NOT_PUBLISHED = "output_not_published"  # the agent could not move the outputs into place
INPUT_REFUSED = "input_refused"  # the server of a remote input refused it for good (a 4xx)
OUTPUT_REFUSED = "output_refused"  # the store refused an upload for good (a 4xx)
DISK_FULL = "disk_full"  # the workload failed writing to a full filesystem: the node's fault

#: Reasons that mean the platform failed its own obligations.
SLA_FAILURES = frozenset({START_FAILED, LIMITS_NOT_APPLIED, LOST_TRACK, RESULT_NOT_RECORDED,
                          OUTPUT_NOT_PUBLISHED, DISK_FULL, INPUT_REFUSED, OUTPUT_REFUSED})
REASON_CHARS = 200  # the longest reason the master accepts in a result

EXIT_START_FAILED = 127  # what a shell returns for a command it cannot run
# How libc (and so FFmpeg) ends a line about a write that failed with ENOSPC.
_ENOSPC_LINE = re.compile(rf": {re.escape(os.strerror(errno.ENOSPC))}\s*$", re.MULTILINE)
_ERROR_TAIL_BYTES = 8192  # FFmpeg's last lines: the error and its aftermath


class ResultExists(FileExistsError):
    """result.json is written once; a second write is refused."""


@dataclass(frozen=True)
class Limits:
    """Limits asked for, and whether all of them are in force (false when none were asked)."""

    cpu_max: str | None = None
    memory_max: int | None = None
    applied: bool = False

    @property
    def requested(self) -> bool:
        return self.cpu_max is not None or self.memory_max is not None


@dataclass(frozen=True)
class Result:
    job_id: str
    attempt: int
    pid: int | None
    mode: Mode
    start_time: str
    end_time: str
    runtime_s: float
    exit_code: int | None
    signal: str | None
    platform_sla: bool
    reason: str
    intent: str | None = None
    cgroup: str | None = None
    limits: Limits = field(default_factory=Limits)
    canceled: bool = False
    progress_end: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """Build from JSON; unknown keys are ignored so older readers accept newer files."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["limits"] = Limits(**(values.get("limits") or {}))
        return cls(**values)

    @classmethod
    def read(cls, job_dir: Path) -> Result:
        return cls.from_dict(read_json(JobDir(job_dir).result_json))

    def write(self, job_dir: Path) -> Path:
        """Atomically create ``<job_dir>/result.json``; ResultExists if it is already there."""
        path = JobDir(job_dir).result_json
        try:
            write_json_atomic(path, self.to_dict(), exclusive=True)
        except FileExistsError:
            raise ResultExists(f"{path} already exists; a result is written once") from None
        return path

    @property
    def success(self) -> bool:
        """Exit 0; for attach (exit code unknowable) ffmpeg's own ``progress=end``."""
        if self.mode == "attach":
            return self.progress_end is True and not self.canceled
        return self.exit_code == 0

    @property
    def exit_status(self) -> int:
        """The wrapper's exit status: the code, 128+N for signal N, 0 when unknowable."""
        if self.exit_code is not None:
            return self.exit_code
        if self.signal is not None:
            return 128 + _signal_number(self.signal)
        return 0

    def summary(self) -> str:
        """The one greppable line per job, for ops at 03:00."""
        intent = re.sub(r"\s+", "_", self.intent) if self.intent else "-"
        sla = "COMPLIANT" if self.platform_sla else "VIOLATION"
        return (f"JOB {self.job_id} | attempt={self.attempt} | intent={intent} | sla={sla} | "
                f"reason={self.reason} | runtime={self.runtime_s:.1f}s | "
                f"exit={self.exit_status} | pid={self.pid if self.pid is not None else '-'}")


def platform_failure(result: Result, reason: str) -> Result:
    """``result`` turned into the platform's failure: the encode may have worked, the job did not."""
    return dataclasses.replace(result, exit_code=None, progress_end=False, platform_sla=False,
                               reason=reason[:REASON_CHARS])


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name])
    except KeyError:  # a name we made up for an unnamed signal: "SIG<n>"
        number = name.removeprefix("SIG")
        return int(number) if number.isdigit() else 0


def classify(*, wait_status: int | None, canceled: bool, limits: Limits,
             mode: Mode, disk_full: bool = False) -> tuple[str, bool]:
    """``(reason, platform_sla)`` for a workload that ran and ended.

    A platform failure outranks everything the workload did; a cancel outranks how the
    workload reacted to it. ``disk_full`` (the workload reported ENOSPC; for attach, only
    pass it when the workload did not finish) turns a failure into the platform's.
    """
    if limits.requested and not limits.applied:
        return LIMITS_NOT_APPLIED, False
    if canceled:
        return CANCELED, True
    code = None if wait_status is None else os.waitstatus_to_exitcode(wait_status)
    if disk_full and code != 0:
        return DISK_FULL, False
    if mode == "attach" or code is None:
        return OBSERVED, True
    if code == 0:
        return COMPLETED, True
    if code < 0:
        return WORKLOAD_SIGNALED, True
    return WORKLOAD_FAILED, True


def exit_fields(wait_status: int | None) -> tuple[int | None, str | None]:
    """``(exit_code, signal)`` from a raw wait status: one of them is set, or neither."""
    if wait_status is None:
        return None, None
    code = os.waitstatus_to_exitcode(wait_status)
    return (code, None) if code >= 0 else (None, signal_name(-code))


def reports_disk_full(job_dir: Path) -> bool:
    """Whether the end of the workload's output says a write failed for lack of space."""
    text = tail(JobDir(job_dir).output_log, _ERROR_TAIL_BYTES)
    return text is not None and _ENOSPC_LINE.search(text) is not None


def progress_end(job_dir: Path) -> bool | None:
    """Whether ffmpeg's ``-progress`` file ends with ``progress=end`` (None: no such file)."""
    return reached_end(JobDir(job_dir).progress)


def lost_track(*, job_id: str, attempt: int, pid: int | None, start_time: str, end_time: str,
               runtime_s: float, intent: str | None = None, cgroup: str | None = None,
               limits: Limits | None = None, mode: Mode = "attach",
               progress: bool | None = None) -> Result:
    """The result to record when nobody could follow a workload to its end (SLA failed)."""
    return Result(job_id=job_id, attempt=attempt, pid=pid, mode=mode, start_time=start_time,
                  end_time=end_time, runtime_s=runtime_s, exit_code=None, signal=None,
                  platform_sla=False, reason=LOST_TRACK, intent=intent, cgroup=cgroup,
                  limits=limits or Limits(), canceled=False, progress_end=progress)
