"""What a signal sent to the WRAPPER does, and the inbox that queues it for the follow loop.

Signal handlers merely queue the signal and poke a pipe (``signal.set_wakeup_fd``), so the
loop wakes at once, and all logging, file writes and cancel signals happen in plain code,
never inside a handler. None of these signals is forwarded to the workload.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
import select
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType


class Action(enum.Enum):
    IGNORE = "ignore"  # log it and keep following
    DETACH = "detach"  # leave: record nothing, touch nothing, exit 0
    CANCEL = "cancel"  # operator cancel: TERM the workload's group, KILL after the grace


SIGNAL_POLICY: dict[signal.Signals, Action] = {
    signal.SIGHUP: Action.IGNORE,   # a closed terminal or a log-reopen habit: not our business
    signal.SIGTERM: Action.DETACH,  # agent/service stop, upgrade: leave, the workload runs on
    signal.SIGINT: Action.DETACH,   # Ctrl-C on a hand-started wrapper: same as SIGTERM
    signal.SIGUSR1: Action.CANCEL,  # operator cancel, relayed by the agent: the ONE kill path
}


class SignalInbox:
    """Queues signals for the follow loop; a handler does nothing else.

    Python handlers (never SIG_IGN) are used even for "ignore": a caught signal is reset to
    its default by exec, so the workload starts with the dispositions it would have had
    without us.
    """

    def __init__(self, policy: Mapping[signal.Signals, Action] = SIGNAL_POLICY,
                 wake_on: tuple[signal.Signals, ...] = ()) -> None:
        self.policy = dict(policy)
        self._pending: collections.deque[signal.Signals] = collections.deque()
        self.woken_at: tuple[float, float] | None = None  # (time.time(), time.monotonic())
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*self.policy, *wake_on):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in self.policy:
            self._pending.append(signal.Signals(signum))
        else:  # a wake-up (SIGCHLD): when it came, which may be well before the loop looks
            self.woken_at = time.time(), time.monotonic()

    def take(self) -> list[signal.Signals]:
        """Signals queued so far, oldest first; one arriving meanwhile stays for next time."""
        taken = []
        while self._pending:
            taken.append(self._pending.popleft())
        return taken

    def sleep(self, timeout: float) -> None:
        """Wait up to ``timeout`` s; any signal (a queued one or SIGCHLD) ends it early."""
        readable, _, _ = select.select([self._read_fd], [], [], max(timeout, 0.0))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 512):
                    pass


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
