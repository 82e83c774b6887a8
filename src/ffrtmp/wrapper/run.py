"""``ffrtmp wrapper run``: start one workload, follow it to its end, record what happened.

The workload gets its own session and process group, /dev/null for stdin and a FILE (never a
pipe) for stdout and stderr, so nothing ties its life to ours: when the wrapper dies, is
stopped or is upgraded away, the workload keeps running and an agent can re-attach to it.
The wrapper signals the workload in exactly one case: an operator's cancel (SIGUSR1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ffrtmp.files import read_json
from ffrtmp.isotime import iso, utc_now
from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper import cgroups, procinfo
from ffrtmp.wrapper.cmdline import EX_SETUP, WrapperCall
from ffrtmp.wrapper.follow import Ended, Workload, follow_workload
from ffrtmp.wrapper.journal import finish, wrapper_state
from ffrtmp.wrapper.placement import remove_cgroup, spawn
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
from ffrtmp.wrapper.start import wrapper_main

log = logging.getLogger("ffrtmp.wrapper")

FOLLOW_INTERVAL_S = 1.0  # SIGCHLD wakes the loop at once; this only bounds a missed wakeup


def main(argv: list[str]) -> int:
    return wrapper_main("run", argv, lambda _call: None, _run_once)


def _run_once(args: WrapperCall, _checked: None, state_dir: StateDir, paths: JobDir,
              extra: dict[str, Any]) -> int:
    running = _workload_in(paths)
    if running is not None:
        log.error("pid %d from %s is still running; not starting a second workload",
                  running, paths.wrapper_json, extra=extra)
        return EX_SETUP
    return _run(args, state_dir, paths, extra)


def _workload_in(paths: JobDir) -> int | None:
    """The pid of a workload this job directory already has, if it is still running."""
    try:
        data = read_json(paths.wrapper_json)
        pid, ticks = data["pid"], data["pid_start_ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(pid, int) and isinstance(ticks, int) and procinfo.alive(pid, ticks):
        return pid
    return None


def _child(pid: int) -> Workload:
    """Our own child: waited for, so its pid (= pgid) can't be reused while we follow it."""

    def poll() -> Ended | None:
        waited, status = os.waitpid(pid, os.WNOHANG)
        return Ended(wait_status=status) if waited else None

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    return Workload(poll, send, FOLLOW_INTERVAL_S)


def _prepare_cgroup(args: WrapperCall, extra: dict[str, Any]) -> tuple[Path | None, Limits]:
    cgroup = cgroups.prepare(args.job_id, args.attempt, cpu_max=args.cpu_max,
                             memory_max=args.memory_max)
    if cgroup.problem:
        log.error("cgroup: %s; the workload runs without limits", cgroup.problem, extra=extra)
    return cgroup.path, Limits(cpu_max=args.cpu_max, memory_max=args.memory_max,
                               applied=cgroup.applied)


def _run(args: WrapperCall, state_dir: StateDir, paths: JobDir, extra: dict[str, Any]) -> int:
    command = list(args.command)
    prepared, limits = _prepare_cgroup(args, extra)
    inbox = SignalInbox(wake_on=(signal.SIGCHLD,))
    started = utc_now()
    t0 = time.monotonic()
    try:
        proc, cgroup_path = spawn(command, paths, prepared, extra)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        return _start_failed(args, state_dir, paths, extra, exc, limits, started)
    if prepared is not None and cgroup_path is None and limits.requested:
        limits = replace(limits, applied=False)
    state = wrapper_state(args, "run", pid=proc.pid, ticks=procinfo.start_ticks(proc.pid),
                          started=started, cgroup=str(cgroup_path) if cgroup_path else None,
                          argv=command, limits=limits)
    followed = follow_workload(_child(proc.pid), inbox, args.cancel_grace_s, state, paths, extra,
                               f"started pid {proc.pid}: {shlex.join(command)}")
    if isinstance(followed, int):
        proc.returncode = 0  # not ours to reap any more; keeps subprocess from asking
        return followed
    ended = utc_now()
    outcome, canceled = followed
    proc.returncode = os.waitstatus_to_exitcode(outcome.wait_status or 0)
    runtime_s = round(time.monotonic() - t0, 3)
    if cgroup_path is not None:
        remove_cgroup(cgroup_path, extra)
    reason, sla = classify(wait_status=outcome.wait_status, canceled=canceled,
                           limits=limits, mode="run", disk_full=reports_disk_full(paths.path))
    exit_code, signame = exit_fields(outcome.wait_status)
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=proc.pid, mode="run",
        start_time=iso(started), end_time=iso(ended), runtime_s=runtime_s,
        exit_code=exit_code, signal=signame, platform_sla=sla, reason=reason,
        intent=args.intent, cgroup=state["cgroup"], limits=limits,
        canceled=canceled, progress_end=progress_end(paths.path))
    return finish(result, paths, state_dir.path, extra)


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
