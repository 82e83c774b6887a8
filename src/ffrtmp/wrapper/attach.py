"""``ffrtmp wrapper attach``: adopt a running workload that is not our child, until it ends.

Used by the agent when a workload outlived its wrapper. A non-child can't be waited for, so
we poll /proc every half second and compare start ticks, which also means a reused pid is
never taken for the workload. Its exit code is unknowable from here; ffmpeg's own
``progress=end`` tells whether the encode finished. Signals follow the same SIGNAL_POLICY.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ffrtmp.files import read_json
from ffrtmp.isotime import iso, parse_iso, utc_now
from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper import cgroups, procinfo
from ffrtmp.wrapper.cmdline import EX_SETUP, WrapperCall
from ffrtmp.wrapper.follow import Ended, Workload, follow_workload
from ffrtmp.wrapper.journal import finish, wrapper_state
from ffrtmp.wrapper.placement import remove_cgroup
from ffrtmp.wrapper.result import (
    LOST_TRACK,
    Limits,
    Result,
    classify,
    progress_end,
    reports_disk_full,
)
from ffrtmp.wrapper.signals import SignalInbox
from ffrtmp.wrapper.start import wrapper_main

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


def _prior(paths: JobDir, pid: int, ticks: int) -> dict[str, Any]:
    """The previous wrapper's wrapper.json when it describes this very process, else {}."""
    try:
        data = read_json(paths.wrapper_json)
    except (OSError, ValueError):
        return {}
    same = (isinstance(data, dict) and data.get("pid") == pid
            and data.get("pid_start_ticks") == ticks)
    return data if same else {}


def main(argv: list[str]) -> int:
    return wrapper_main("attach", argv, _find, _attach_once)


def _find(args: WrapperCall) -> procinfo.ProcStat | int:
    if args.pid is None:  # the parser requires it; this only narrows the type
        return EX_SETUP
    target = _target(args.pid, args.start_ticks)
    if target is None:
        print(f"process {args.pid} does not exist", file=sys.stderr)
        return EX_NO_PROCESS
    return target


def _attach_once(args: WrapperCall, target: procinfo.ProcStat, state_dir: StateDir,
                 paths: JobDir, extra: dict[str, Any]) -> int:
    follower = _prior(paths, target.pid, target.start_ticks)
    if follower and procinfo.alive(follower.get("wrapper_pid", 0),
                                   follower.get("wrapper_start_ticks")):
        log.error("wrapper pid %s already follows pid %d; not attaching twice",
                  follower["wrapper_pid"], target.pid, extra=extra)
        return EX_SETUP
    return _attach(args, target, state_dir, paths, extra)


def _adopted(pid: int, ticks: int, extra: dict[str, Any]) -> Workload:
    """Not our child: seen through /proc, and re-identified right before each signal."""

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
        # The group is signalled only when the workload leads its own (as run makes it);
        # never someone else's group.
        stat = _target(pid, ticks)
        if stat is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if stat.pgrp == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    return Workload(poll, send, POLL_INTERVAL_S)


def _attach(args: WrapperCall, target: procinfo.ProcStat, state_dir: StateDir,
            paths: JobDir, extra: dict[str, Any]) -> int:
    pid, ticks = target.pid, target.start_ticks
    inbox = SignalInbox()  # first: from here on, a SIGTERM detaches
    prior = _prior(paths, pid, ticks)
    started = _started(prior, ticks)
    limits = Limits(**prior["limits"]) if isinstance(prior.get("limits"), dict) else Limits()
    cgroup = prior.get("cgroup")
    state = wrapper_state(args, "attach", pid=pid, ticks=ticks, started=started, cgroup=cgroup,
                          argv=prior.get("argv") or procinfo.cmdline(pid), limits=limits,
                          node=args.node or prior.get("node"),
                          intent=args.intent or prior.get("intent"),
                          cancel_requested=bool(prior.get("cancel_requested")))
    followed = follow_workload(_adopted(pid, ticks, extra), inbox, args.cancel_grace_s, state,
                               paths, extra, f"attached to pid {pid} (start ticks {ticks})")
    if isinstance(followed, int):
        return followed
    ended = utc_now()
    outcome, canceled = followed
    if cgroup and not outcome.lost and cgroups.is_job_cgroup(Path(cgroup)):
        remove_cgroup(Path(cgroup), extra)
    canceled = canceled or state["cancel_requested"]
    finished = progress_end(paths.path)
    reason, sla = classify(wait_status=None, canceled=canceled, limits=limits, mode="attach",
                           disk_full=finished is not True and reports_disk_full(paths.path))
    if outcome.lost:
        reason, sla = LOST_TRACK, False
    result = Result(
        job_id=args.job_id, attempt=args.attempt, pid=pid, mode="attach",
        start_time=iso(started), end_time=iso(ended),
        runtime_s=round(max((ended - started).total_seconds(), 0.0), 3),
        exit_code=None, signal=None, platform_sla=sla, reason=reason, intent=state["intent"],
        cgroup=cgroup, limits=limits, canceled=canceled, progress_end=finished)
    return finish(result, paths, state_dir.path, extra)


def _started(prior: dict[str, Any], ticks: int) -> datetime:
    """The workload's real start: the first wrapper's record, else derived from /proc."""
    try:
        return parse_iso(prior["started_at"])
    except (KeyError, TypeError, ValueError):
        return procinfo.started_at(ticks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
