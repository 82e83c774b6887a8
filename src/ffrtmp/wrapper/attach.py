"""``ffrtmp wrapper attach``: adopt a running workload that is not our child, until it ends.

Used by the agent when a workload outlived its wrapper. A non-child can't be waited for, so
we poll /proc every half second and compare start ticks, which also means a reused pid is
never taken for the workload. Its exit code is unknowable from here; ffmpeg's own
``progress=end`` tells whether the encode finished. Signals follow run's SIGNAL_POLICY.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from ffrtmp.wrapper import cgroups, procinfo
from ffrtmp.wrapper.cmdline import EX_SETUP, WrapperCall, parse
from ffrtmp.wrapper.common import (
    Canceler,
    Detached,
    Ended,
    JobPaths,
    SignalInbox,
    follow,
    iso,
    open_job_dir,
    parse_iso,
    read_json,
    setup_logging,
    utc_now,
)
from ffrtmp.wrapper.result import (
    LOST_TRACK,
    Limits,
    Result,
    classify,
    progress_end,
    reports_disk_full,
)
from ffrtmp.wrapper.run import SIGNAL_POLICY, detach, finish, remove_cgroup, write_wrapper_json

log = logging.getLogger("ffrtmp.wrapper")

POLL_INTERVAL_S = 0.5
EX_NO_PROCESS = 1


def _target(pid: int, ticks: int | None) -> procinfo.ProcStat | None:
    try:
        stat = procinfo.read_stat(pid)
    except PermissionError:
        return None
    if stat is None or stat.exited or (ticks is not None and stat.start_ticks != ticks):
        return None
    return stat


def _prior(paths: JobPaths, pid: int, ticks: int) -> dict[str, Any]:
    """The previous wrapper's wrapper.json when it describes this very process, else {}."""
    try:
        data = read_json(paths.wrapper_json)
    except (OSError, ValueError):
        return {}
    same = (isinstance(data, dict) and data.get("pid") == pid
            and data.get("pid_start_ticks") == ticks)
    return data if same else {}


def main(argv: list[str]) -> int:
    args = parse("attach", argv)
    if isinstance(args, int):
        return args
    if args.pid is None:  # the parser requires it; this only narrows the type
        return EX_SETUP
    target = _target(args.pid, args.start_ticks)
    if target is None:
        print(f"process {args.pid} does not exist", file=sys.stderr)
        return EX_NO_PROCESS
    extra = setup_logging(args, os.environ)
    opened = open_job_dir(args, extra)
    if isinstance(opened, int):
        return opened
    state_dir, paths = opened
    follower = _prior(paths, target.pid, target.start_ticks)
    if follower and procinfo.alive(follower.get("wrapper_pid", 0),
                                   follower.get("wrapper_start_ticks")):
        log.error("wrapper pid %s already follows pid %d; not attaching twice",
                  follower["wrapper_pid"], target.pid, extra=extra)
        return EX_SETUP
    return _attach(args, target, state_dir, paths, extra)


def _attach(args: WrapperCall, target: procinfo.ProcStat, state_dir: Path,
            paths: JobPaths, extra: dict[str, Any]) -> int:
    pid, ticks = target.pid, target.start_ticks
    inbox = SignalInbox(SIGNAL_POLICY)  # first: from here on, a SIGTERM detaches
    prior = _prior(paths, pid, ticks)
    started = _started(prior, ticks)
    intent = args.intent or prior.get("intent")
    limits = Limits(**prior["limits"]) if isinstance(prior.get("limits"), dict) else Limits()
    cgroup = prior.get("cgroup")
    state: dict[str, Any] = {
        "job_id": args.job_id, "attempt": args.attempt, "node": args.node or prior.get("node"),
        "mode": "attach",
        "wrapper_pid": os.getpid(), "wrapper_start_ticks": procinfo.self_start_ticks(),
        "pid": pid, "pid_start_ticks": ticks, "started_at": iso(started), "cgroup": cgroup,
        "argv": prior.get("argv") or procinfo.cmdline(pid), "intent": intent,
        "limits": asdict(limits), "detached": False,
        "cancel_requested": bool(prior.get("cancel_requested")),
    }
    write_wrapper_json(paths, state, extra)
    log.info("attached to pid %d (start ticks %d)", pid, ticks, extra=extra)
    outcome, canceled = _follow_target(args, pid, ticks, inbox, state, paths, extra)
    if isinstance(outcome, Detached):
        return detach(outcome, state, paths, extra)
    ended = utc_now()
    if cgroup and not outcome.lost and cgroups.is_job_cgroup(Path(cgroup)):
        remove_cgroup(Path(cgroup), extra)
    canceled = canceled or state["cancel_requested"]
    finished = progress_end(paths.job_dir)
    reason, sla = classify(wait_status=None, canceled=canceled, limits=limits, mode="attach",
                           disk_full=finished is not True and reports_disk_full(paths.job_dir))
    if outcome.lost:
        reason, sla = LOST_TRACK, False
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=pid, mode="attach",
        start_time=iso(started), end_time=iso(ended),
        runtime_s=round(max((ended - started).total_seconds(), 0.0), 3),
        exit_code=None, signal=None, platform_sla=sla, reason=reason, intent=intent,
        cgroup=cgroup, limits=limits, canceled=canceled, progress_end=finished)
    return finish(result, paths, state_dir, extra).exit_status


def _follow_target(args: WrapperCall, pid: int, ticks: int, inbox: SignalInbox,
                   state: dict[str, Any], paths: JobPaths,
                   extra: dict[str, Any]) -> tuple[Ended | Detached, bool]:
    """Follow a workload that is not our child; ``(outcome, cancel requested)``."""

    def poll() -> Ended | None:
        try:
            stat = procinfo.read_stat(pid)
        except PermissionError:
            log.error("/proc/%d can no longer be read", pid, extra=extra)
            return Ended(lost=True)
        if stat is None or stat.exited or stat.start_ticks != ticks:
            return Ended()
        return None

    def send(sig: signal.Signals) -> None:
        # Not our child: re-check identity right before each signal. The group is signalled
        # only when the workload leads its own (as run makes it); never someone else's group.
        stat = _target(pid, ticks)
        if stat is None:
            return
        try:
            if stat.pgrp == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def on_cancel() -> None:
        state["cancel_requested"] = True
        write_wrapper_json(paths, state, extra)

    canceler = Canceler(send, args.cancel_grace_s, extra, on_request=on_cancel)
    return follow(poll, inbox, canceler, POLL_INTERVAL_S, extra), canceler.requested


def _started(prior: dict[str, Any], ticks: int) -> datetime:
    """The workload's real start: the first wrapper's record, else derived from /proc."""
    try:
        return parse_iso(prior["started_at"])
    except (KeyError, TypeError, ValueError):
        return procinfo.started_at(ticks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
