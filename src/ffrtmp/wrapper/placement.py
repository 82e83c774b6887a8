"""Starting the workload inside its job cgroup, and removing that cgroup when it is done.

``cgroups`` returns or raises every problem; this module logs each one with ``job=``. A
cgroup that cannot be joined or removed never stops the workload: it runs without it.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from ffrtmp.layout import JobDir
from ffrtmp.wrapper import cgroups

log = logging.getLogger("ffrtmp.wrapper")


def spawn(command: list[str], paths: JobDir, cgroup_path: Path | None,
          extra: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path | None]:
    """Start the workload (inside the job cgroup when there is one); OSError if exec fails.

    Its own session, /dev/null for stdin and a FILE (never a pipe) for its output: nothing
    ties its life to the wrapper's.
    """
    home = None
    if cgroup_path is not None:
        try:
            home = cgroups.enter(cgroup_path)
        except OSError as exc:
            log.error("cannot join %s: %s; the workload runs outside it", cgroup_path, exc,
                      extra=extra)
            _remove_quietly(cgroup_path, extra)
            cgroup_path = None
    try:
        with paths.output_log.open("ab") as output:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
    except (OSError, ValueError):
        if cgroup_path is not None:
            _leave(home, extra)
            _remove_quietly(cgroup_path, extra)
        raise
    _leave(home, extra)
    return proc, cgroup_path


def _leave(home: Path | None, extra: dict[str, Any]) -> None:
    if home is None:
        return
    try:
        cgroups.leave(home)
    except OSError as exc:
        log.error("cannot move the wrapper back to %s: %s", home, exc, extra=extra)


def _remove_quietly(path: Path, extra: dict[str, Any]) -> None:
    remove_cgroup(path, extra, wait_s=0)


def remove_cgroup(path: Path, extra: dict[str, Any], wait_s: float = 1.0) -> None:
    try:
        cgroups.remove(path, wait_s=wait_s)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc, extra=extra)
