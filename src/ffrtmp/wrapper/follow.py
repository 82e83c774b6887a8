"""Following one workload to its end: the only place the wrapper waits.

``run`` and ``attach`` differ only in the ``Workload`` they pass: how to tell that it ended
and how to signal it. Everything else, signals to the wrapper, an operator's cancel and
detaching, is handled here, in plain code, once.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ffrtmp.layout import JobDir
from ffrtmp.wrapper.journal import detach, write_wrapper_json
from ffrtmp.wrapper.signals import Action, SignalInbox

log = logging.getLogger("ffrtmp.wrapper")


class Canceler:
    """Operator cancel: SIGTERM now, SIGKILL once the grace has passed, each sent once."""

    def __init__(self, send: Callable[[signal.Signals], None], grace_s: float,
                 extra: dict[str, Any], on_request: Callable[[], None] | None = None) -> None:
        self._send = send
        self.grace_s = grace_s
        self._extra = extra
        self._on_request = on_request
        self.requested_at: float | None = None
        self.killed = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self, now: float) -> None:
        if self.requested_at is not None:
            log.info("cancel already in progress", extra=self._extra)
            return
        self.requested_at = now
        log.warning("cancel requested: SIGTERM to the workload, SIGKILL after %.1fs",
                    self.grace_s, extra=self._extra)
        if self._on_request is not None:
            self._on_request()
        self._send(signal.SIGTERM)

    def seconds_left(self, now: float) -> float | None:
        if self.requested_at is None or self.killed:
            return None
        return self.requested_at + self.grace_s - now

    def tick(self, now: float) -> None:
        left = self.seconds_left(now)
        if left is not None and left <= 0:
            self.killed = True
            log.warning("workload still running %.1fs after SIGTERM: SIGKILL", self.grace_s,
                        extra=self._extra)
            self._send(signal.SIGKILL)


@dataclass(frozen=True)
class Ended:
    """The workload is gone. ``wait_status`` only for our own child; ``lost`` if unseeable."""

    wait_status: int | None = None
    lost: bool = False


@dataclass(frozen=True)
class Detached:
    signal_name: str


@dataclass(frozen=True)
class Workload:
    """What run and attach do differently: see whether it ended, signal it, how often."""

    poll: Callable[[], Ended | None]
    send: Callable[[signal.Signals], None]
    interval_s: float


def follow(poll: Callable[[], Ended | None], inbox: SignalInbox, canceler: Canceler,
           interval_s: float, extra: dict[str, Any]) -> Ended | Detached:
    """Wait for the workload to end, acting on signals per the inbox's policy.

    The end is checked before signals, so a workload that ended as a SIGTERM arrived is
    still recorded rather than abandoned.
    """
    while True:
        ended = poll()
        if ended is not None:
            return ended
        now = time.monotonic()
        for signum in inbox.take():
            action = inbox.policy[signum]
            if action is Action.DETACH:
                return Detached(signum.name)
            if action is Action.IGNORE:
                log.info("%s ignored; still following the workload", signum.name, extra=extra)
            elif action is Action.CANCEL:
                canceler.request(now)
        canceler.tick(now)
        left = canceler.seconds_left(now)
        inbox.sleep(interval_s if left is None else min(interval_s, max(left, 0.0)))


def follow_workload(workload: Workload, inbox: SignalInbox, grace_s: float,
                    state: dict[str, Any], paths: JobDir, extra: dict[str, Any],
                    announce: str) -> tuple[Ended, bool] | int:
    """``(how it ended, cancel requested)``; or, having detached (recorded), exit status 0.

    wrapper.json (``state``) is written first, then ``announce`` is logged. A cancel is
    written to wrapper.json before the workload is signalled, so a wrapper that adopts the
    workload later still records it as canceled.
    """
    write_wrapper_json(paths, state, extra)
    log.info("%s", announce, extra=extra)

    def on_cancel() -> None:
        state["cancel_requested"] = True
        write_wrapper_json(paths, state, extra)

    canceler = Canceler(workload.send, grace_s, extra, on_request=on_cancel)
    outcome = follow(workload.poll, inbox, canceler, workload.interval_s, extra)
    if isinstance(outcome, Detached):
        return detach(outcome.signal_name, state, paths, extra)
    return outcome, canceler.requested
