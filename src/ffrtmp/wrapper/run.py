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
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ffrtmp.wrapper import cgroups, counters, procinfo
from ffrtmp.wrapper.cmdline import EX_SETUP, WrapperCall, parse
from ffrtmp.wrapper.common import (
    Action,
    Canceler,
    Detached,
    Ended,
    JobPaths,
    SignalInbox,
    follow,
    iso,
    open_job_dir,
    read_json,
    setup_logging,
    utc_now,
    write_json_atomic,
)
from ffrtmp.wrapper.result import (
    EXIT_START_FAILED,
    RESULT_NOT_RECORDED,
    START_FAILED,
    Limits,
    Result,
    ResultExists,
    classify,
    exit_fields,
    progress_end,
    reports_disk_full,
)

#: What a signal sent to the WRAPPER does. None of these is forwarded to the workload.
SIGNAL_POLICY: dict[signal.Signals, Action] = {
    signal.SIGHUP: Action.IGNORE,   # a closed terminal or a log-reopen habit: not our business
    signal.SIGTERM: Action.DETACH,  # agent/service stop, upgrade: leave, the workload runs on
    signal.SIGINT: Action.DETACH,   # Ctrl-C on a hand-started wrapper: same as SIGTERM
    signal.SIGUSR1: Action.CANCEL,  # operator cancel, relayed by the agent: the ONE kill path
}

log = logging.getLogger("ffrtmp.wrapper")

FOLLOW_INTERVAL_S = 1.0  # SIGCHLD wakes the loop at once; this only bounds a missed wakeup


def write_wrapper_json(paths: JobPaths, state: dict[str, Any], extra: dict[str, Any]) -> None:
    """wrapper.json lets an agent find (and re-adopt) us; failing to write it is logged."""
    try:
        write_json_atomic(paths.wrapper_json, state)
    except OSError as exc:
        log.error("cannot write %s: %s", paths.wrapper_json, exc, extra=extra)


def finish(result: Result, paths: JobPaths, state_dir: Path, extra: dict[str, Any]) -> Result:
    """Record the result (layer 1), count it (layer 2) and log its summary (layer 3)."""
    try:
        result.write(paths.job_dir)
    except ResultExists:
        log.error("%s already exists, so this outcome (%s) is not recorded or counted",
                  paths.result_json, result.reason, extra=extra)
        return result
    except OSError as exc:
        log.error("cannot write %s: %s", paths.result_json, exc, extra=extra)
        result = replace(result, platform_sla=False, reason=RESULT_NOT_RECORDED)
    try:
        counters.record(state_dir, result)
    except OSError as exc:
        log.error("cannot update the wrapper counters: %s", exc, extra=extra)
    log.info("%s", result.summary(), extra=extra)
    return result


def main(argv: list[str]) -> int:
    args = parse("run", argv)
    if isinstance(args, int):
        return args
    extra = setup_logging(args, os.environ)
    opened = open_job_dir(args, extra)
    if isinstance(opened, int):
        return opened
    state_dir, paths = opened
    running = _workload_in(paths)
    if running is not None:
        log.error("pid %d from %s is still running; not starting a second workload",
                  running, paths.wrapper_json, extra=extra)
        return EX_SETUP
    return _run(args, state_dir, paths, extra)


def _workload_in(paths: JobPaths) -> int | None:
    """The pid of a workload this job directory already has, if it is still running."""
    try:
        data = read_json(paths.wrapper_json)
        pid, ticks = data["pid"], data["pid_start_ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(pid, int) and isinstance(ticks, int) and procinfo.alive(pid, ticks):
        return pid
    return None


def _run(args: WrapperCall, state_dir: Path, paths: JobPaths, extra: dict[str, Any]) -> int:
    command = list(args.command)
    cgroup = cgroups.prepare(args.job_id, args.attempt, cpu_max=args.cpu_max,
                             memory_max=args.memory_max)
    limits = Limits(cpu_max=args.cpu_max, memory_max=args.memory_max, applied=cgroup.applied)
    if cgroup.problem:
        log.error("cgroup: %s; the workload runs without limits", cgroup.problem, extra=extra)
    inbox = SignalInbox(SIGNAL_POLICY, wake_on=(signal.SIGCHLD,))
    started = utc_now()
    t0 = time.monotonic()
    try:
        proc, cgroup_path = _spawn(command, paths, cgroup.path, extra)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        return _start_failed(args, command, state_dir, paths, extra, exc, limits, started)
    if cgroup.path is not None and cgroup_path is None and limits.requested:
        limits = replace(limits, applied=False)
    pid = proc.pid
    state: dict[str, Any] = {
        "job_id": args.job_id, "attempt": args.attempt, "node": args.node, "mode": "run",
        "wrapper_pid": os.getpid(), "wrapper_start_ticks": procinfo.self_start_ticks(),
        "pid": pid, "pid_start_ticks": procinfo.start_ticks(pid), "started_at": iso(started),
        "cgroup": str(cgroup_path) if cgroup_path else None, "argv": command,
        "intent": args.intent, "limits": asdict(limits), "detached": False,
        "cancel_requested": False,
    }
    write_wrapper_json(paths, state, extra)
    log.info("started pid %d: %s", pid, shlex.join(command), extra=extra)
    outcome, canceled = _follow_child(args, proc, inbox, state, paths, extra)
    if isinstance(outcome, Detached):
        proc.returncode = 0  # not ours to reap any more; keeps subprocess from asking
        return detach(outcome, state, paths, extra)
    ended = utc_now()
    runtime_s = round(time.monotonic() - t0, 3)
    proc.returncode = os.waitstatus_to_exitcode(outcome.wait_status or 0)
    if cgroup_path is not None:
        remove_cgroup(cgroup_path, extra)
    reason, sla = classify(wait_status=outcome.wait_status, canceled=canceled,
                           limits=limits, mode="run", disk_full=reports_disk_full(paths.job_dir))
    exit_code, signame = exit_fields(outcome.wait_status)
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=pid, mode="run",
        start_time=iso(started), end_time=iso(ended), runtime_s=runtime_s,
        exit_code=exit_code, signal=signame, platform_sla=sla, reason=reason,
        intent=args.intent, cgroup=state["cgroup"], limits=limits,
        canceled=canceled, progress_end=progress_end(paths.job_dir))
    return finish(result, paths, state_dir, extra).exit_status


def _follow_child(args: WrapperCall, proc: subprocess.Popen[bytes], inbox: SignalInbox,
                  state: dict[str, Any], paths: JobPaths,
                  extra: dict[str, Any]) -> tuple[Ended | Detached, bool]:
    """Follow our own child to its end or until we detach; ``(outcome, cancel requested)``."""
    pid = proc.pid

    def poll() -> Ended | None:
        waited, status = os.waitpid(pid, os.WNOHANG)
        return Ended(wait_status=status) if waited else None

    def send(sig: signal.Signals) -> None:
        # The child is not reaped until poll() sees it, so its pid (= pgid) can't be reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    def on_cancel() -> None:
        state["cancel_requested"] = True
        write_wrapper_json(paths, state, extra)

    canceler = Canceler(send, args.cancel_grace_s, extra, on_request=on_cancel)
    return follow(poll, inbox, canceler, FOLLOW_INTERVAL_S, extra), canceler.requested


def detach(outcome: Detached, state: dict[str, Any], paths: JobPaths,
           extra: dict[str, Any]) -> int:
    """Leave the workload running: record that in wrapper.json, log it, exit 0."""
    state.update(detached=True, detached_at=iso(utc_now()), detached_by=outcome.signal_name)
    write_wrapper_json(paths, state, extra)
    log.info("%s: detached; workload continues (pid %d)", outcome.signal_name, state["pid"],
             extra=extra)
    return 0


def remove_cgroup(path: Path, extra: dict[str, Any]) -> None:
    try:
        cgroups.remove(path)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc, extra=extra)


def _spawn(command: list[str], paths: JobPaths, cgroup_path: Path | None,
           extra: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path | None]:
    """Start the workload (inside the job cgroup when there is one); OSError if exec fails."""
    home = None
    if cgroup_path is not None:
        try:
            home = cgroups.enter(cgroup_path)
        except OSError as exc:
            log.error("cannot join %s: %s; the workload runs outside it", cgroup_path, exc,
                      extra=extra)
            _remove_quietly(cgroup_path, extra)
            cgroup_path = None
    try:
        with paths.output_log.open("ab") as output:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
    except (OSError, ValueError):
        if cgroup_path is not None:
            _leave(home, extra)
            _remove_quietly(cgroup_path, extra)
        raise
    _leave(home, extra)
    return proc, cgroup_path


def _leave(home: Path | None, extra: dict[str, Any]) -> None:
    if home is None:
        return
    try:
        cgroups.leave(home)
    except OSError as exc:
        log.error("cannot move the wrapper back to %s: %s", home, exc, extra=extra)


def _remove_quietly(path: Path, extra: dict[str, Any]) -> None:
    try:
        cgroups.remove(path, wait_s=0)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc, extra=extra)


def _start_failed(args: WrapperCall, command: list[str], state_dir: Path,
                  paths: JobPaths, extra: dict[str, Any], exc: Exception, limits: Limits,
                  started: datetime) -> int:
    log.error("cannot start %s: %s", shlex.join(command), exc, extra=extra)
    try:
        with paths.output_log.open("a", encoding="utf-8") as output:
            output.write(f"ffrtmp wrapper: cannot start {shlex.join(command)}: {exc}\n")
    except OSError as log_exc:
        log.error("cannot write %s: %s", paths.output_log, log_exc, extra=extra)
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=None, mode="run",
        start_time=iso(started), end_time=iso(utc_now()), runtime_s=0.0,
        exit_code=EXIT_START_FAILED, signal=None, platform_sla=False, reason=START_FAILED,
        intent=args.intent, cgroup=None, limits=limits, canceled=False, progress_end=None)
    return finish(result, paths, state_dir, extra).exit_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
