"""What /proc says about a process, read without signalling it.

A pid alone is not an identity: once a process is reaped its number can be reused. The start
time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``) is fixed for the life of a
process, so ``(pid, start_ticks)`` names one process and never its successor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PROC = Path("/proc")
_GONE = frozenset("ZX")  # zombie or dead: exited, only the parent's bookkeeping is left


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int

    @property
    def exited(self) -> bool:
        return self.state in _GONE


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None when there is no such process.

    Raises PermissionError when /proc hides the process (``hidepid``): that is "cannot see",
    not "gone", and callers must not confuse the two.
    """
    if pid <= 0:
        return None
    try:
        raw = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) is in parentheses and may itself contain spaces or ')'.
    rest = raw[raw.rindex(")") + 2:].split()
    # rest[0] is field 3; field N is rest[N - 3].
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgrp=int(rest[2]),
                    session=int(rest[3]), start_ticks=int(rest[19]))


def start_ticks(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_ticks


def self_start_ticks() -> int:
    stat = read_stat(os.getpid())
    if stat is None:  # pragma: no cover - our own entry always exists
        raise RuntimeError("cannot read /proc/self/stat")
    return stat.start_ticks


def alive(pid: int, ticks: int | None = None) -> bool:
    """True while ``pid`` runs and, when ``ticks`` is given, is still the same process."""
    try:
        stat = read_stat(pid)
    except PermissionError:
        return False
    if stat is None or stat.exited:
        return False
    return ticks is None or stat.start_ticks == ticks


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid`` ([] for kernel threads or when it can't be read)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def started_at(ticks: int) -> datetime:
    """Wall-clock start of a process from its start ticks (boot time + ticks / CLK_TCK)."""
    btime = 0
    for line in (PROC / "stat").read_text(encoding="utf-8").splitlines():
        if line.startswith("btime "):
            btime = int(line.split()[1])
            break
    return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)
