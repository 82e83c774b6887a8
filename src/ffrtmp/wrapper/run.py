"""``ffrtmp wrapper run``: start one workload, follow it to its end, record what happened.

The workload gets its own session and process group, /dev/null for stdin and a FILE (never a
pipe) for stdout and stderr, so nothing ties its life to ours: when the wrapper dies, is
stopped or is upgraded away, the workload keeps running and an agent can re-attach to it.
The wrapper signals the workload in exactly one case: an operator's cancel (SIGUSR1).

The workload starts first and the rest is imported after: everything up to its exec (the
call, the job directory, the cgroup, the signal inbox) uses only modules Python has loaded
at start-up, and what it has to log waits in ``Notes`` until logging is set up
(``following``), while the workload already runs.
"""

# ruff: noqa: PTH110, PTH118, PTH123
# (os.path, not pathlib: this runs before the workload starts, and pathlib is slow to import)

from __future__ import annotations

import os
import signal
import sys
import time

from ffrtmp.wrapper.cmdline import EX_SETUP, parse
from ffrtmp.wrapper.jobdir import OUTPUT_LOG, WRAPPER_JSON, open_job_dir
from ffrtmp.wrapper.notes import Notes
from ffrtmp.wrapper.placement import spawn
from ffrtmp.wrapper.signals import SignalInbox

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ffrtmp.wrapper.cmdline import WrapperCall

_AGENT_LEAF = "agent"  # cgroups.AGENT_LEAF (a test holds them equal)


def main(argv: list[str]) -> int:
    call = parse("run", argv)
    if isinstance(call, int):
        return call
    return run(call)


def run(call: WrapperCall) -> int:
    """Start the workload, then hand everything else to ``following``: the exit status."""
    notes = Notes()
    opened = open_job_dir(call, notes)
    if isinstance(opened, int):
        return _refused(call, notes, opened)
    state_dir, job_dir = opened
    running = _workload_in(job_dir)
    if running is not None:
        notes.error("pid %d from %s is still running; not starting a second workload",
                    running, os.path.join(job_dir, WRAPPER_JSON))
        return _refused(call, notes, EX_SETUP)
    prepared, applied = _prepare_cgroup(call, notes)
    inbox = SignalInbox(wake_on=(signal.SIGCHLD,))
    started, t0 = time.time(), time.monotonic()
    spawned: tuple[int, Path | None] | Exception
    try:
        spawned = spawn(list(call.command), os.path.join(job_dir, OUTPUT_LOG), prepared, notes)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        spawned = exc
    from ffrtmp.wrapper import following  # the rest, while the workload runs

    launch = following.Launch(call=call, state_dir=state_dir, job_dir=job_dir, notes=notes,
                              inbox=inbox, started=started, t0=t0, prepared=prepared,
                              applied=applied)
    return following.follow_run(launch, spawned)


def _refused(call: WrapperCall, notes: Notes, status: int) -> int:
    """Nothing started: log why (logging is set up only now) and return ``status``."""
    from ffrtmp.wrapper.following import log_notes

    log_notes(call, notes)
    return status


def _workload_in(job_dir: str) -> int | None:
    """The pid of a workload this job directory already has, if it is still running."""
    path = os.path.join(job_dir, WRAPPER_JSON)
    if not os.path.exists(path):
        return None  # the usual case: a fresh attempt, and nothing to import
    import json

    from ffrtmp.wrapper import procinfo

    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        pid, ticks = data["pid"], data["pid_start_ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(pid, int) and isinstance(ticks, int) and procinfo.alive(pid, ticks):
        return pid
    return None


def _prepare_cgroup(call: WrapperCall, notes: Notes) -> tuple[Path | None, bool]:
    """The job cgroup and whether its limits hold; ``cgroups`` is imported only where one
    can exist (we sit in an ``agent`` leaf) or limits were asked for (to say why not)."""
    wanted = call.cpu_max is not None or call.memory_max is not None
    if not wanted and not _maybe_delegated():
        return None, False
    from ffrtmp.wrapper import cgroups

    cgroup = cgroups.prepare(call.job_id, call.attempt, cpu_max=call.cpu_max,
                             memory_max=call.memory_max)
    if cgroup.problem:
        notes.error("cgroup: %s; the workload runs without limits", cgroup.problem)
    return cgroup.path, cgroup.applied


def _maybe_delegated() -> bool:
    """False when this process is certainly not in an ``agent`` leaf (``cgroups`` decides
    the rest): its v2 line in /proc/self/cgroup names another cgroup, or there is none."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return False
    return any(line.startswith("0::") and line.rstrip().rsplit("/", 1)[-1] == _AGENT_LEAF
               for line in lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
