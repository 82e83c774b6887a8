"""What a wrapper writes: wrapper.json while it follows, then the result, counters and summary.

wrapper.json lets an agent find (and re-adopt) the workload; result.json (layer 1), the
counters (layer 2) and the summary line (layer 3) record how it ended, once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ffrtmp.files import write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.layout import JobDir
from ffrtmp.wrapper import counters, procinfo
from ffrtmp.wrapper.cmdline import Mode, WrapperCall
from ffrtmp.wrapper.result import RESULT_NOT_RECORDED, Limits, Result, ResultExists

log = logging.getLogger("ffrtmp.wrapper")


def wrapper_state(call: WrapperCall, mode: Mode, *, pid: int, ticks: int | None,
                  started: datetime, cgroup: str | None, argv: list[str], limits: Limits,
                  **more: Any) -> dict[str, Any]:
    """wrapper.json's fields; ``more`` overrides the call's intent and node, and the flags."""
    return {
        "job_id": call.job_id, "attempt": call.attempt, "node": call.node, "mode": mode,
        "wrapper_pid": os.getpid(), "wrapper_start_ticks": procinfo.self_start_ticks(),
        "pid": pid, "pid_start_ticks": ticks, "started_at": iso(started), "cgroup": cgroup,
        "argv": argv, "intent": call.intent, "limits": asdict(limits), "detached": False,
        "cancel_requested": False, **more,
    }


def write_wrapper_json(paths: JobDir, state: dict[str, Any], extra: dict[str, Any]) -> None:
    """Failing to write wrapper.json is logged; the workload is followed all the same."""
    try:
        write_json_atomic(paths.wrapper_json, state)
    except OSError as exc:
        log.error("cannot write %s: %s", paths.wrapper_json, exc, extra=extra)


def detach(signal_name: str, state: dict[str, Any], paths: JobDir,
           extra: dict[str, Any]) -> int:
    """Leave the workload running: record that in wrapper.json, log it, exit 0."""
    state.update(detached=True, detached_at=iso(utc_now()), detached_by=signal_name)
    write_wrapper_json(paths, state, extra)
    log.info("%s: detached; workload continues (pid %d)", signal_name, state["pid"],
             extra=extra)
    return 0


def finish(result: Result, paths: JobDir, state_dir: Path, extra: dict[str, Any]) -> int:
    """Record the result (layer 1), count it (layer 2) and log its summary (layer 3).

    Returns the wrapper's exit status.
    """
    try:
        result.write(paths.path)
    except ResultExists:
        log.error("%s already exists, so this outcome (%s) is not recorded or counted",
                  paths.result_json, result.reason, extra=extra)
        return result.exit_status
    except OSError as exc:
        log.error("cannot write %s: %s", paths.result_json, exc, extra=extra)
        result = replace(result, platform_sla=False, reason=RESULT_NOT_RECORDED)
    try:
        counters.record(state_dir, result)
    except OSError as exc:
        log.error("cannot update the wrapper counters: %s", exc, extra=extra)
    log.info("%s", result.summary(), extra=extra)
    return result.exit_status
