"""Signals set one Event; shutdown handlers run in LIFO order; sd_notify talks to systemd.

Signal handlers only record the signal (no logging, no I/O): the loop that waits on
``Shutdown.event`` does the work. Every wait in a daemon is ``event.wait(timeout)`` so a
SIGTERM cuts a backoff or a poll short.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


class Shutdown:
    """The stop flag of a process and its stack of shutdown handlers."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self._stack = contextlib.ExitStack()

    def install(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        for signum in signals:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout``; True as soon as shutdown is requested."""
        return self.event.wait(timeout)

    def register(self, name: str, callback: Callable[[], object]) -> None:
        """Run ``callback`` at shutdown, after everything registered later."""

        def run() -> None:
            log.info("shutdown: %s", name)
            try:
                callback()
            except Exception:
                log.exception("shutdown handler %s failed", name)

        self._stack.callback(run)

    def run_handlers(self) -> None:
        self._stack.close()


def sd_notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` to systemd's notify socket; a no-op without NOTIFY_SOCKET. Never raises."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        log.debug("sd_notify(%r) to %r failed", state, address, exc_info=True)
        return False


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec in seconds, or None when no watchdog is set."""
    env = environ if environ is not None else os.environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class Watchdog:
    """Feeds systemd's watchdog for as long as the main loop keeps its promises.

    Before each step that may block, the loop promises to be back within that step's bound
    (``expect``): an HTTP attempt promises its timeouts, a pass its own start. A feeder thread
    sends WATCHDOG=1 every quarter of WatchdogSec while the latest promise, plus half a
    WatchdogSec, holds. A pass that waits out a silent master (each attempt bounded by its
    timeout, the retries by their backoff) keeps the unit alive however many retries it
    takes; a loop stuck past its promise stops the feed, and systemd restarts it.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.interval_s = watchdog_interval(environ)  # half of WatchdogSec, or None
        self._until = 0.0

    def expect(self, seconds: float = 0.0) -> None:
        """The loop will be back, or promise again, within ``seconds``."""
        if self.interval_s is not None:
            self._until = time.monotonic() + seconds + self.interval_s

    def alive(self) -> bool:
        return time.monotonic() <= self._until

    def start(self) -> None:
        if self.interval_s is None:
            return
        self.expect()
        threading.Thread(target=self._feed, args=(self.interval_s / 2,), daemon=True,
                         name="watchdog").start()

    def _feed(self, period_s: float) -> None:
        pause = threading.Event()  # never set: the feed ends with the process
        while not pause.wait(period_s):
            if self.alive():
                sd_notify("WATCHDOG=1")
