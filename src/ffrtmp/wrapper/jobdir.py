"""The job directory a wrapper call names: resolved, created, refused if already recorded."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper.cmdline import EX_SETUP, STATE_DIR, WrapperCall, setting_value

log = logging.getLogger("ffrtmp.wrapper")


def resolve_state_dir(flag: str | None, environ: Mapping[str, str]) -> StateDir:
    """``--state-dir``, else FFRTMP_STATE_DIR, else the default; ./state when not writable."""
    chosen = Path(setting_value(flag, STATE_DIR, environ))
    for candidate in (StateDir(chosen), StateDir(Path.cwd() / "state")):
        try:
            candidate.wrapper.path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate.wrapper.path, os.W_OK | os.X_OK):
            if candidate.path != chosen:
                log.warning("state dir %s is not writable; using %s", chosen, candidate.path)
            return candidate
    raise OSError(f"cannot write the state dir {chosen} or ./state")


def open_job_dir(call: WrapperCall, extra: Mapping[str, Any]) -> tuple[StateDir, JobDir] | int:
    """The state dir and the job's files, created; EX_SETUP (logged) when it can't be used.

    Without ``--job-dir`` the job lives where the agent puts it. A job directory that already
    holds a result.json is refused: an attempt is recorded once.
    """
    try:
        state = resolve_state_dir(call.state_dir, os.environ)
        paths = JobDir(Path(call.job_dir)) if call.job_dir else state.job(call.job_id, call.attempt)
        paths.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot prepare the job directory: %s", exc, extra=extra)
        return EX_SETUP
    if paths.result_json.exists():
        log.error("%s exists: that attempt is recorded; give this one a fresh --job-dir",
                  paths.result_json, extra=extra)
        return EX_SETUP
    return state, paths
