"""The job directory a wrapper call names: resolved, created, refused if already recorded.

Plain strings and ``os`` calls: this runs before the workload starts. The names are
``ffrtmp.layout``'s, read from it only once the workload runs (``JobDir``, ``StateDir``).
"""

# ruff: noqa: PTH103, PTH109, PTH110, PTH118
# (os.path, not pathlib: this runs before the workload starts, and pathlib is slow to import)

from __future__ import annotations

import os

from ffrtmp.wrapper.cmdline import STATE_DIR, setting_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ffrtmp.wrapper.cmdline import WrapperCall
    from ffrtmp.wrapper.notes import Notes

# ffrtmp.layout's names (a test holds them equal): importing it here would cost pathlib and
# dataclasses before the workload starts.
JOBS, WRAPPER, RESULT_JSON, WRAPPER_JSON, OUTPUT_LOG = (
    "jobs", "wrapper", "result.json", "wrapper.json", "output.log")


def resolve_state_dir(flag: str | None, environ: Mapping[str, str], notes: Notes) -> str:
    """``--state-dir``, else FFRTMP_STATE_DIR, else the default; ./state when not writable."""
    chosen = setting_value(flag, STATE_DIR, environ)
    for candidate in (chosen, os.path.join(os.getcwd(), "state")):
        counters = os.path.join(candidate, WRAPPER)
        try:
            os.makedirs(counters, exist_ok=True)
        except OSError:
            continue
        if os.access(counters, os.W_OK | os.X_OK):
            if candidate != chosen:
                notes.warning("state dir %s is not writable; using %s", chosen, candidate)
            return candidate
    raise OSError(f"cannot write the state dir {chosen} or ./state")


def open_job_dir(call: WrapperCall, notes: Notes) -> tuple[str, str] | int:
    """The state dir and the job directory, created; EX_SETUP (noted) when it can't be used.

    Without ``--job-dir`` the job lives where the agent puts it. A job directory that already
    holds a result.json is refused: an attempt is recorded once.
    """
    from ffrtmp.wrapper.cmdline import EX_SETUP

    try:
        state = resolve_state_dir(call.state_dir, os.environ, notes)
        job = call.job_dir or os.path.join(state, JOBS, f"{call.job_id}.{call.attempt}")
        os.makedirs(job, exist_ok=True)
    except OSError as exc:
        notes.error("cannot prepare the job directory: %s", exc)
        return EX_SETUP
    result = os.path.join(job, RESULT_JSON)
    if os.path.exists(result):
        notes.error("%s exists: that attempt is recorded; give this one a fresh --job-dir", result)
        return EX_SETUP
    return state, job
