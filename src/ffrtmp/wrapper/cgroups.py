"""A cgroup v2 leaf per job, inside the subtree systemd delegated to the worker unit.

Layout (``Delegate=yes`` on ffrtmp-worker.service): the agent moves itself into
``<unit>/agent`` (``enter_agent_leaf``) so the unit cgroup has no processes of its own and may
enable controllers for its children: cgroup v2 forbids processes in a cgroup whose children
have controllers enabled. Wrappers inherit ``<unit>/agent``; each creates ``<unit>/job-<id>-<attempt>``
beside it, writes cpu.max / memory.max there, and starts the workload inside it.

We never touch a cgroup we were not given: without v2 at /sys/fs/cgroup, or when we are not
in an ``agent`` leaf whose parent we may write, there is no job cgroup. Every failure is
returned as a ``problem`` for the caller to log with ``job=``; none is swallowed.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
AGENT_LEAF = "agent"


@dataclass(frozen=True)
class JobCgroup:
    """The outcome of preparing a job cgroup: where it is, and whether limits hold."""

    path: Path | None
    applied: bool
    problem: str | None = None


def own_cgroup(root: Path = ROOT, self_cgroup: Path = SELF_CGROUP) -> Path | None:
    """This process's v2 cgroup directory, or None without cgroup v2 at ``root``."""
    if not (root / "cgroup.controllers").is_file():
        return None
    try:
        lines = self_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return root / line[3:].strip().lstrip("/")
    return None


@dataclass(frozen=True)
class AgentLeaf:
    """Where ``enter_agent_leaf`` left the agent: in ``leaf``, or in ``unit`` and why."""

    leaf: Path | None
    moved: bool = False
    unit: Path | None = None  # set when v2 is there but the leaf could not be entered
    error: OSError | None = None


def enter_agent_leaf(root: Path = ROOT, self_cgroup: Path = SELF_CGROUP) -> AgentLeaf:
    """Move this process into ``<unit>/agent`` when the unit's cgroup was delegated to us."""
    own = own_cgroup(root, self_cgroup)
    if own is None:
        return AgentLeaf(None)
    if own.name == AGENT_LEAF:
        return AgentLeaf(own)
    if not os.access(own / "cgroup.procs", os.W_OK) or not os.access(own, os.W_OK):
        return AgentLeaf(None, unit=own)
    leaf = own / AGENT_LEAF
    try:
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
    except OSError as exc:
        return AgentLeaf(None, unit=own, error=exc)
    return AgentLeaf(leaf, moved=True)


def cgroup_name(path: Path, root: Path = ROOT) -> str:
    """A cgroup directory as /proc/<pid>/cgroup names it: ``/system.slice/…``."""
    relative = path.relative_to(root).as_posix()
    return "/" if relative == "." else "/" + relative


def delegated_parent(root: Path = ROOT, self_cgroup: Path = SELF_CGROUP) -> Path | None:
    """The unit cgroup we may create job cgroups in, or None when nothing was delegated."""
    own = own_cgroup(root, self_cgroup)
    if own is None or own == root or own.name != AGENT_LEAF:
        return None
    parent = own.parent
    writable = (os.access(parent, os.W_OK | os.X_OK)
                and os.access(parent / "cgroup.subtree_control", os.W_OK)
                and os.access(parent / "cgroup.procs", os.W_OK))
    return parent if writable and parent != root else None


def _why_not(root: Path, self_cgroup: Path) -> str:
    own = own_cgroup(root, self_cgroup)
    if own is None:
        return f"cgroup v2 is not mounted at {root}"
    return f"cgroup {own} is not an '{AGENT_LEAF}' leaf of a delegated unit"


def _write(path: Path, value: str) -> None:
    path.write_text(value, encoding="ascii")


def prepare(job_id: str, attempt: int, *, cpu_max: str | None, memory_max: int | None,
            root: Path = ROOT, self_cgroup: Path = SELF_CGROUP) -> JobCgroup:
    """Create ``job-<id>-<attempt>`` and apply the requested limits.

    ``applied`` is true only when limits were requested and all of them were written.
    """
    wanted = cpu_max is not None or memory_max is not None
    parent = delegated_parent(root, self_cgroup)
    if parent is None:
        return JobCgroup(None, False, _why_not(root, self_cgroup) if wanted else None)
    path = parent / f"job-{job_id}-{attempt}"
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        return JobCgroup(None, False, f"cannot create {path}: {exc}")
    if not wanted:
        return JobCgroup(path, False)
    try:
        _enable_controllers(parent, cpu=cpu_max is not None, memory=memory_max is not None)
        if cpu_max is not None:
            _write(path / "cpu.max", cpu_max)
        if memory_max is not None:
            _write(path / "memory.max", str(memory_max))
    except OSError as exc:
        return JobCgroup(path, False, f"cannot apply limits in {path}: {exc}")
    return JobCgroup(path, True)


def _enable_controllers(parent: Path, *, cpu: bool, memory: bool) -> None:
    wanted = [name for name, on in (("cpu", cpu), ("memory", memory)) if on]
    available = (parent / "cgroup.controllers").read_text(encoding="ascii").split()
    missing = [name for name in wanted if name not in available]
    if missing:
        raise OSError(errno.ENOTSUP, f"controllers {missing} not available in {parent}")
    enabled = (parent / "cgroup.subtree_control").read_text(encoding="ascii").split()
    for name in wanted:
        if name not in enabled:
            _write(parent / "cgroup.subtree_control", f"+{name}")


def enter(path: Path, root: Path = ROOT, self_cgroup: Path = SELF_CGROUP) -> Path:
    """Move this process into ``path``; return the cgroup to go back to with ``leave``.

    The wrapper spawns the workload between ``enter`` and ``leave``: fork inherits the
    cgroup, so the workload is a member from its first instruction, and no code of ours runs
    between its fork and exec (no ``preexec_fn``). Errors surface here, in the wrapper,
    where they can be logged with ``job=``.
    """
    home = own_cgroup(root, self_cgroup)
    if home is None:
        raise OSError(errno.ENOENT, "own cgroup unknown")
    _write(path / "cgroup.procs", str(os.getpid()))
    return home


def leave(home: Path) -> None:
    _write(home / "cgroup.procs", str(os.getpid()))


def remove(path: Path, wait_s: float = 1.0) -> None:
    """Remove an emptied job cgroup; retry briefly while the kernel finishes the exit.

    Raises OSError (EBUSY) when something still lives in it, e.g. a process the workload
    left behind: the caller logs it and leaves the cgroup for an operator.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


def is_job_cgroup(path: Path, root: Path = ROOT) -> bool:
    """Guard for cleanup by another wrapper (attach): only our own job leaves are removed."""
    return path.name.startswith("job-") and root in path.parents
