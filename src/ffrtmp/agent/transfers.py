"""Transfers in the background, one thread per job, so the agent's loop never waits on the network.

A transfer is a message: tried again with backoff while the far end is unavailable, for as long
as it takes, and ended only by a refusal, a cancel, or the agent's exit (the next agent resumes
it from what the job directory records). The encode is never part of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ffrtmp.media.backoff import delays
from ffrtmp.media.errors import Canceled, TransferError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, int, str]  # job id, attempt, and which transfer of the attempt


@dataclass
class Task:
    """One job's transfer: its thread, its cancel switch, and how it ended once ``done``."""

    cancel: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    value: Any = None
    error: TransferError | None = None


class Transfers:
    def __init__(self, wake: threading.Event) -> None:
        self._tasks: dict[Key, Task] = {}
        self._lock = threading.Lock()
        self.wake = wake  # set when a task ends, so the loop acts on it at once

    def start(self, key: Key, work: Callable[[threading.Event], Any]) -> Task:
        """The running task for ``key``, or a new one running ``work(cancel)``."""
        with self._lock:
            task = self._tasks.get(key)
            if task is not None:
                return task
            task = self._tasks[key] = Task()
        threading.Thread(target=self._run, args=(task, work), daemon=True,
                         name=f"transfer-{key[0]}").start()
        return task

    def _run(self, task: Task, work: Callable[[threading.Event], Any]) -> None:
        try:
            task.value = work(task.cancel)
        except TransferError as exc:
            task.error = exc
        except Exception as exc:  # a bug or a local I/O error: end the task, keep the agent
            log.exception("transfer failed")
            task.error = TransferError(f"{type(exc).__name__}: {exc}")
        task.done = True
        self.wake.set()

    def get(self, key: Key) -> Task | None:
        with self._lock:
            return self._tasks.get(key)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._tasks.pop(key, None)

    def active(self, phase: str) -> int:
        """Tasks of one kind still running, for the metrics."""
        with self._lock:
            return sum(1 for key, task in self._tasks.items() if key[2] == phase and not task.done)

    def cancel(self, key: Key) -> bool:
        task = self.get(key)
        if task is None or task.done:
            return False
        task.cancel.set()
        return True


def retrying(call: Callable[[], T], cancel: threading.Event, ids: Mapping[str, Any],
             on_retry: Callable[[], object] = lambda: None) -> T:
    """``call()`` until it succeeds, tried again after each Unavailable; a refusal ends it."""
    for delay in delays():
        try:
            return call()
        except Unavailable as exc:
            on_retry()
            log.warning("%s; trying again in %.0f s", exc, delay, extra=ids)
            if cancel.wait(delay):
                raise Canceled(exc.method, exc.url) from None
    raise AssertionError("delays() never ends")
