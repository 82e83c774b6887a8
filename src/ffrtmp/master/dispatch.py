"""Long-polled claims: a waiting claim sleeps until the queue changes, its deadline or shutdown.

A claim that found nothing holds its server thread for up to ``wait_s``. Each used to poll
``store.queue_marker()`` itself every tick, so the database saw one query per tick per waiting
agent. Now one ``QueueWatch`` thread per process reads the marker once per tick, only while
some claim waits, and wakes every waiting claim when it moves; the waiting claims cost no
queries of their own. The marker is a plain read on SQLite and PostgreSQL alike, so both
dialects are woken the same way. A job submitted through this process pokes the watch, which
then reads at once: only work queued through another process waits for the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from prometheus_client import Gauge

from ffrtmp.master.store.protocol import Assignment, Store
from ffrtmp.shutdown import Shutdown

log = logging.getLogger(__name__)

# How stale the watch lets the marker get: a waiting claim's wake-up latency for work queued
# through another process. One read per tick per process while any claim waits (before, each
# waiting claim read every 20 ms).
TICK_S = 0.01
# A waiting claim looks at the shutdown flag at least this often even if nothing wakes it.
RECHECK_S = 0.5


class QueueWatch:
    """One process's watcher of the queue marker; waiting claims block on its condition."""

    def __init__(self, store: Store, shutdown: Shutdown, tick_s: float = TICK_S) -> None:
        self.store, self.shutdown, self.tick_s = store, shutdown, tick_s
        self._changed = threading.Condition()
        self._version = 0  # counts the marker changes seen
        self._marker: tuple[int, int] | None = None  # None: not read yet, or the read failed
        self._watchers = 0
        self._poked = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        return self._stopped or self.shutdown.requested

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ffrtmp-queue-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def enter(self) -> int | None:
        """Start watching for a claim; returns the version to wait past, None when closed."""
        with self._changed:
            self._watchers += 1
            self._changed.notify_all()  # the watch idles while nobody waits
            return None if self.closed else self._version

    def poke(self) -> None:
        """This process queued work: read the marker now rather than at the next tick."""
        self._poked.set()

    def leave(self) -> None:
        with self._changed:
            self._watchers -= 1

    def wait(self, seen: int, deadline: float) -> int | None:
        """Block until the marker moved past version ``seen``; None at the deadline or when closed."""
        with self._changed:
            while not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self._changed.wait_for(lambda: self._version != seen or self.closed,
                                          timeout=min(remaining, RECHECK_S)):
                    return None if self.closed else self._version
            return None

    def _run(self) -> None:
        while self._has_watchers():
            self._poked.wait(self.tick_s)
            self._poked.clear()
            if self.closed:
                break
            self._read()
        with self._changed:
            self._changed.notify_all()  # closed: every waiting claim returns now

    def _has_watchers(self) -> bool:
        """Idle, without queries, until a claim waits; False once closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._watchers > 0 or self.closed)
            return not self.closed

    def _read(self) -> None:
        try:
            marker: tuple[int, int] | None = self.store.queue_marker()
        except Exception:  # the waiters' own claims meet the error and answer it
            log.debug("queue marker unreadable", exc_info=True)
            marker = None
        with self._changed:
            if marker != self._marker:
                self._marker = marker
                self._version += 1
                self._changed.notify_all()


class ClaimWaiter:
    """Claims again whenever the watch sees the queue change, until the deadline or shutdown.

    Waiting holds a server thread, so at most ``capacity`` claims wait per process; beyond
    that a claim answers at once and the agent simply asks again.
    """

    def __init__(self, store: Store, watch: QueueWatch, waiting: Gauge, *, lease_s: float,
                 capacity: int) -> None:
        self.store, self.watch, self.waiting, self.lease_s = store, watch, waiting, lease_s
        self._slots = threading.BoundedSemaphore(capacity)

    def wait_and_claim(self, node_id: str, slots: int, deadline: float,
                       ended: Sequence[tuple[str, int]] = (), *,
                       claim_id: str | None = None) -> list[Assignment]:
        """Claim now, then each time the queue changes; past the cap, claim once and answer.
        ``ended``: the node's attempts whose workload has ended; ``claim_id``: the agent's id
        for this claim message, the same in every claim of the wait (``Store.claim``)."""
        if not self._slots.acquire(blocking=False):
            return self.store.claim(node_id, slots, lease_s=self.lease_s, ended=ended,
                                    claim_id=claim_id)
        self.waiting.inc()
        try:
            return self._claim_on_change(node_id, slots, deadline, ended, claim_id)
        finally:
            self.waiting.dec()
            self._slots.release()

    def _claim_on_change(self, node_id: str, slots: int, deadline: float,
                         ended: Sequence[tuple[str, int]],
                         claim_id: str | None) -> list[Assignment]:
        seen = self.watch.enter()
        try:
            while seen is not None:
                # the watch is entered first, so no change between this claim and the wait is missed
                found = self.store.claim(node_id, slots, lease_s=self.lease_s, ended=ended,
                                         claim_id=claim_id)
                if found:
                    return found
                seen = self.watch.wait(seen, deadline)
            return []
        finally:
            self.watch.leave()
