"""Under a delegated systemd unit, the agent lives in ``<unit>/agent`` so jobs get siblings.

``ffrtmp.wrapper.cgroups`` owns the layout and does the move; this decides whether to try
(only under systemd) and says what came of it, before any thread starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ffrtmp.wrapper import cgroups

log = logging.getLogger(__name__)


def enter_agent_leaf(root: Path = cgroups.ROOT,
                     environ: Mapping[str, str] | None = None) -> str | None:
    """The agent's cgroup (``/…/agent``) once it is in its leaf; None when jobs get none."""
    env = os.environ if environ is None else environ
    if "INVOCATION_ID" not in env:  # not started by systemd: leave the caller's cgroup alone
        return None
    placed = cgroups.enter_agent_leaf(root)
    if placed.leaf is not None:
        name = cgroups.cgroup_name(placed.leaf, root)
        if placed.moved:
            log.info("agent moved into cgroup %s", name)
        return name
    if placed.unit is None:
        log.info("cgroup v2 not available: jobs run without their own cgroups")
    elif placed.error is None:
        log.info("cgroup %s is not delegated (Delegate=yes): jobs run without their own cgroups",
                 cgroups.cgroup_name(placed.unit, root))
    else:
        log.warning("could not move into %s: %s; jobs run without their own cgroups",
                    placed.unit / cgroups.AGENT_LEAF, placed.error)
    return None
