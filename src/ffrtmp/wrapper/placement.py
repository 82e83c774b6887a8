"""Starting the workload inside its job cgroup, and removing that cgroup when it is done.

``cgroups`` returns or raises every problem; this module notes or logs each one with
``job=``. A cgroup that cannot be joined or removed never stops the workload: it runs without
it. ``spawn`` runs before logging is set up (``Notes``) and uses ``os.posix_spawnp``, not
``subprocess``: the workload starts with no module imported for it.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from ffrtmp.wrapper.notes import Notes

_OUTPUT_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def spawn(command: list[str], output_log: str, cgroup_path: Path | None,
          notes: Notes) -> tuple[int, Path | None]:
    """Start the workload (inside the job cgroup when there is one): its pid and the cgroup.

    Its own session, /dev/null for stdin and a FILE (never a pipe) for its output: nothing
    ties its life to the wrapper's. It inherits nothing else (every descriptor of ours is
    close-on-exec) and gets the signal dispositions a shell would give it: SIGPIPE and
    SIGXFSZ back to their defaults (Python ignores them), our handlers reset by exec.
    Raises OSError when it cannot be started, ValueError for a NUL byte in an argument.
    """
    home = None
    if cgroup_path is not None:
        from ffrtmp.wrapper import cgroups

        try:
            home = cgroups.enter(cgroup_path)
        except OSError as exc:
            notes.error("cannot join %s: %s; the workload runs outside it", cgroup_path, exc)
            _remove_noted(cgroup_path, notes)
            cgroup_path = None
    try:
        pid = _posix_spawn(command, output_log)
    except (OSError, ValueError):
        if cgroup_path is not None:
            _leave(home, notes)
            _remove_noted(cgroup_path, notes)
        raise
    _leave(home, notes)
    return pid, cgroup_path


def _posix_spawn(command: list[str], output_log: str) -> int:
    output = os.open(output_log, _OUTPUT_FLAGS, 0o666)
    try:
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
        return os.posix_spawnp(command[0], command, os.environ, file_actions=actions,
                               setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    finally:
        os.close(output)


def _leave(home: Path | None, notes: Notes) -> None:
    if home is None:
        return
    from ffrtmp.wrapper import cgroups

    try:
        cgroups.leave(home)
    except OSError as exc:
        notes.error("cannot move the wrapper back to %s: %s", home, exc)


def _remove_noted(path: Path, notes: Notes) -> None:
    from ffrtmp.wrapper import cgroups

    try:
        cgroups.remove(path, wait_s=0)
    except OSError as exc:
        notes.warning("cannot remove %s: %s", path, exc)


def remove_cgroup(path: Path, extra: dict[str, Any], wait_s: float = 1.0) -> None:
    """After the workload: remove its cgroup, or log why it stays (for an operator)."""
    import logging

    from ffrtmp.wrapper import cgroups

    try:
        cgroups.remove(path, wait_s=wait_s)
    except OSError as exc:
        logging.getLogger("ffrtmp.wrapper").warning("cannot remove %s: %s", path, exc,
                                                    extra=extra)
