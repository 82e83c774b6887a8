"""Standby wrappers: started ahead, handed their call when a slot frees.

A cold ``ffrtmp wrapper run`` pays Python's start-up and its imports before FFmpeg starts,
and on a busy node (the other slot's encode holding every CPU) that is the slot's idle time
between two jobs. A standby (``ffrtmp.wrapper.standby``) paid them while the slot was busy:
it blocks reading its call from a pipe, and ``hand_off`` writes the call and closes the pipe.
Nothing else changes: the same command line, the same wrapper, its own session from birth,
outliving the agent. The agent holds the only write end of each pipe (close-on-exec), so
when it dies, or ``close`` runs, its standbys read end of input and exit 0.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path

from ffrtmp.wrapper.cmdline import WrapperCall, entry

log = logging.getLogger(__name__)


class StandbyPool:
    """Up to ``size`` idle standby wrappers; ``hand_off`` uses one, ``fill`` tops up."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._closed = False

    def fill(self) -> None:
        """Start standbys until ``size`` are waiting (dead ones are reaped on the way)."""
        with self._lock:
            self._idle = [proc for proc in self._idle if proc.poll() is None]
            while not self._closed and len(self._idle) < self.size:
                try:
                    self._idle.append(_start())
                except OSError as exc:
                    log.warning("cannot start a standby wrapper: %s; wrappers start cold", exc)
                    return

    def hand_off(self, call: WrapperCall, out: Path) -> subprocess.Popen[bytes] | None:
        """A standby now running ``call`` with its output in ``out``; None when none is ready
        (the caller starts a wrapper cold)."""
        message = json.dumps({"argv": call.words(), "out": str(out)}).encode() + b"\n"
        while True:
            with self._lock:
                if not self._idle:
                    return None
                proc = self._idle.pop(0)
            if proc.poll() is not None or proc.stdin is None:
                continue
            try:
                proc.stdin.write(message)
                proc.stdin.close()
            except OSError:  # it died meanwhile: the next one, or cold
                proc.poll()
                continue
            return proc

    def close(self) -> None:
        """Let every idle standby go (end of input: they exit 0); none is started again."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for proc in idle:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in idle:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("standby wrapper pid=%d did not exit at end of input", proc.pid)


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(entry("standby"), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
