"""Under a delegated systemd unit, the agent lives in ``<unit>/agent`` so jobs get siblings.

cgroup v2 forbids processes in a cgroup whose children have controllers enabled, so before
wrappers can create ``<unit>/job-<id>-<attempt>`` leaves with cpu/memory limits, the agent moves
itself out of the unit's root into a leaf of its own. Wrappers it starts inherit that leaf.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")


def own_cgroup(proc_self: Path = Path("/proc/self/cgroup")) -> str | None:
    """The cgroup v2 path of this process ("0::/…"), or None on a v1-only system."""
    try:
        for line in proc_self.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    except OSError:
        return None
    return None


def enter_agent_leaf(root: Path = ROOT, environ: dict[str, str] | None = None) -> str | None:
    """Move this process into ``<unit>/agent`` when systemd delegated the unit's cgroup to us."""
    env = os.environ if environ is None else environ
    if "INVOCATION_ID" not in env:  # not started by systemd: leave the caller's cgroup alone
        return None
    current = own_cgroup()
    if current is None or not (root / "cgroup.controllers").exists():
        log.info("cgroup v2 not available: jobs run without their own cgroups")
        return None
    if current.endswith("/agent"):
        return current
    unit = root / current.lstrip("/")
    if not os.access(unit / "cgroup.procs", os.W_OK) or not os.access(unit, os.W_OK):
        log.info("cgroup %s is not delegated (Delegate=yes): jobs run without their own cgroups",
                 current)
        return None
    leaf = unit / "agent"
    try:
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        log.warning("could not move into %s: %s; jobs run without their own cgroups", leaf, exc)
        return None
    log.info("agent moved into cgroup %s/agent", current.rstrip("/"))
    return current.rstrip("/") + "/agent"
