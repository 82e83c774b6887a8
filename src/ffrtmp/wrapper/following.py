"""``run`` once its workload was started: logging, wrapper.json, following it, the result.

Imported only after the workload's exec (``run``), so none of this delays it. What ``run``
noted on the way (job directory, cgroup) is logged first, with the job's fields.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffrtmp.isotime import iso, utc_now
from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper import procinfo
from ffrtmp.wrapper.cmdline import WrapperCall
from ffrtmp.wrapper.follow import Ended, Workload, follow_workload
from ffrtmp.wrapper.journal import finish, wrapper_state
from ffrtmp.wrapper.logsetup import setup_logging
from ffrtmp.wrapper.notes import Notes
from ffrtmp.wrapper.placement import remove_cgroup
from ffrtmp.wrapper.result import (
    EXIT_START_FAILED,
    START_FAILED,
    Limits,
    Result,
    classify,
    exit_fields,
    progress_end,
    reports_disk_full,
)
from ffrtmp.wrapper.signals import SignalInbox

log = logging.getLogger("ffrtmp.wrapper")

FOLLOW_INTERVAL_S = 1.0  # SIGCHLD wakes the loop at once; this only bounds a missed wakeup


@dataclass(frozen=True)
class Launch:
    """What ``run`` did before importing this: where, when, and the cgroup it prepared."""

    call: WrapperCall
    state_dir: str
    job_dir: str
    notes: Notes
    inbox: SignalInbox
    started: float  # time.time() right before the spawn
    t0: float  # time.monotonic() at the same moment
    prepared: Path | None
    applied: bool


def log_notes(call: WrapperCall, notes: Notes) -> dict[str, Any]:
    """Set up logging for the call, log what was noted before: the records' ``extra``."""
    extra = setup_logging(call, os.environ)
    notes.emit(log, extra)
    return extra


def _child(pid: int) -> Workload:
    """Our own child: waited for, so its pid (= pgid) can't be reused while we follow it."""

    def poll() -> Ended | None:
        waited, status = os.waitpid(pid, os.WNOHANG)
        return Ended(wait_status=status) if waited else None

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    return Workload(poll, send, FOLLOW_INTERVAL_S)


def follow_run(launch: Launch, spawned: tuple[int, Path | None] | Exception) -> int:
    """Follow the started workload to its end and record it (or record that it never started)."""
    args = launch.call
    extra = log_notes(args, launch.notes)
    state_dir, paths = StateDir(Path(launch.state_dir)), JobDir(Path(launch.job_dir))
    started = datetime.fromtimestamp(launch.started, UTC)
    limits = Limits(cpu_max=args.cpu_max, memory_max=args.memory_max, applied=launch.applied)
    if isinstance(spawned, Exception):
        return _start_failed(args, state_dir, paths, extra, spawned, limits, started)
    pid, cgroup_path = spawned
    if launch.prepared is not None and cgroup_path is None and limits.requested:
        limits = replace(limits, applied=False)
    command = list(args.command)
    state = wrapper_state(args, "run", pid=pid, ticks=procinfo.start_ticks(pid),
                          started=started, cgroup=str(cgroup_path) if cgroup_path else None,
                          argv=command, limits=limits)
    followed = follow_workload(_child(pid), launch.inbox, args.cancel_grace_s, state, paths,
                               extra, f"started pid {pid}: {shlex.join(command)}")
    if isinstance(followed, int):
        return followed
    outcome, canceled = followed
    ended, runtime_s = _ended(launch)
    if cgroup_path is not None:
        remove_cgroup(cgroup_path, extra)
    reason, sla = classify(wait_status=outcome.wait_status, canceled=canceled,
                           limits=limits, mode="run", disk_full=reports_disk_full(paths.path))
    exit_code, signame = exit_fields(outcome.wait_status)
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=pid, mode="run",
        start_time=iso(started), end_time=iso(ended), runtime_s=runtime_s,
        exit_code=exit_code, signal=signame, platform_sla=sla, reason=reason,
        intent=args.intent, cgroup=state["cgroup"], limits=limits,
        canceled=canceled, progress_end=progress_end(paths.path))
    return finish(result, paths, state_dir.path, extra)


def _ended(launch: Launch) -> tuple[datetime, float]:
    """When the workload ended and how long it ran: from the SIGCHLD that told us, which
    may have come while this module was still being imported; else from now."""
    now = launch.inbox.woken_at or (time.time(), time.monotonic())
    return datetime.fromtimestamp(now[0], UTC), round(max(now[1] - launch.t0, 0.0), 3)


def _start_failed(args: WrapperCall, state_dir: StateDir, paths: JobDir, extra: dict[str, Any],
                  exc: Exception, limits: Limits, started: datetime) -> int:
    command = shlex.join(args.command)
    log.error("cannot start %s: %s", command, exc, extra=extra)
    try:
        with paths.output_log.open("a", encoding="utf-8") as output:
            output.write(f"ffrtmp wrapper: cannot start {command}: {exc}\n")
    except OSError as log_exc:
        log.error("cannot write %s: %s", paths.output_log, log_exc, extra=extra)
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=None, mode="run",
        start_time=iso(started), end_time=iso(utc_now()), runtime_s=0.0,
        exit_code=EXIT_START_FAILED, signal=None, platform_sla=False, reason=START_FAILED,
        intent=args.intent, cgroup=None, limits=limits, canceled=False, progress_end=None)
    return finish(result, paths, state_dir.path, extra)
