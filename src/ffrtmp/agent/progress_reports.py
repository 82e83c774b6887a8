"""Progress between heartbeats: the running jobs' figures, sent at most once a second.

FFmpeg writes its ``-progress`` block every second; heartbeats go every few seconds, which made
``jobs watch`` jump. So each loop pass may send one small report of the figures that changed
since the last one. It is informational, like the metrics: one attempt, never retried, never
failed over, and a failure only delays the next report (the heartbeat still carries progress,
so a master without the route, or one that is away, loses nothing but smoothness).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable
from ffrtmp.agent.jobs import JobTable
from ffrtmp.logs import fields

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # at most one report a second per node
AWAY_S = 5.0  # after a failure: about one heartbeat before the next try
NO_ROUTE_S = 300.0  # a master without the route is asked again after this (it may be upgraded)
MAX_ITEMS = 256  # the master's limit per report


class ProgressReports:
    def __init__(self, client: MasterClient, jobs: JobTable, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.jobs, self.clock = client, jobs, clock
        self.next_at = 0.0
        self.sent: dict[tuple[str, int], dict[str, Any]] = {}  # the figures the master has

    def send_due(self) -> int:
        """Send the figures that changed since the last report, if a report is due; how many."""
        now = self.clock()
        if now < self.next_at or self.client.node_id is None:
            return 0
        self.next_at = now + INTERVAL_S
        current = {j.key: p for j in self.jobs.running() if (p := self.jobs.progress(j))}
        self.sent = {k: v for k, v in self.sent.items() if k in current}  # ended jobs leave
        changed = [(key, p) for key, p in current.items() if self.sent.get(key) != p][:MAX_ITEMS]
        if not changed:
            return 0
        try:
            self.client.report_progress([{"job_id": job_id, "attempt": attempt, "progress": p}
                                         for (job_id, attempt), p in changed])
        except MasterUnavailable as exc:
            self._pause(AWAY_S, "master away (%s)", exc)
            return 0
        except MasterRejected as exc:
            if exc.status in (404, 405) and not exc.forgotten:
                self._pause(NO_ROUTE_S, "the master takes progress only in heartbeats (%s)", exc)
            else:  # a forgotten node registers again through the heartbeat
                self._pause(AWAY_S, "progress report refused (%s)", exc)
            return 0
        self.sent.update(changed)
        return len(changed)

    def _pause(self, seconds: float, message: str, exc: Exception) -> None:
        self.next_at = self.clock() + seconds
        log.debug(message, exc, extra=fields(node=self.client.node_id))
