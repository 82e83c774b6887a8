"""The queue's last hour, from the history every state change leaves (``transitions``).

The depth is derived backwards from the current count: the queued jobs at a moment ``t`` are
those queued now, less the jobs that became queued after ``t``, plus those that left the queue
after ``t``. The current count is the counters' (``job_counts``, what ``ffrtmp_jobs_by_state``
reports), and the history is read as they count: a split job counts as its parts, not once more
itself. Both are read by one statement, so they come from one snapshot; the scan covers the
hour only, through the ``transitions_at`` index (migration 7).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from ffrtmp.contract import FINAL, JobState, Step
from ffrtmp.isotime import iso_from_ts
from ffrtmp.master.store.sqltext import in_list
from ffrtmp.master.store.transactions import SqlCore

WINDOW_S = 3600
BUCKET_S = 300
BUCKETS = WINDOW_S // BUCKET_S
_QUEUED = f"'{JobState.QUEUED.value}'"
_FINAL = in_list(FINAL)


@functools.lru_cache(maxsize=1)
def _history_sql() -> str:
    """Per bucket (-1: the current count; 0..BUCKETS-1: the hour; BUCKETS: after its end) the
    change in queued jobs and the jobs that reached a final state (not moved between two)."""
    bucket = " ".join(f"WHEN t.at <= ? THEN {i}" for i in range(BUCKETS))
    return (
        "SELECT b, SUM(dq) AS dq, SUM(fin) AS fin FROM ("
        f" SELECT CASE {bucket} ELSE {BUCKETS} END AS b,"
        f" CASE WHEN t.to_state = {_QUEUED} THEN 1 ELSE 0 END"
        f" - CASE WHEN t.from_state = {_QUEUED} THEN 1 ELSE 0 END AS dq,"
        f" CASE WHEN t.to_state IN {_FINAL} AND (t.from_state IS NULL"
        f" OR t.from_state NOT IN {_FINAL}) THEN 1 ELSE 0 END AS fin"
        " FROM transitions t JOIN jobs j ON j.id = t.job_id"
        f" WHERE t.at > ? AND j.step <> '{Step.SPLIT.value}'"
        f" AND (t.to_state = {_QUEUED} OR t.from_state = {_QUEUED} OR t.to_state IN {_FINAL})"
        f" UNION ALL SELECT -1, SUM(n), 0 FROM job_counts WHERE key = {_QUEUED}"
        ") h GROUP BY b")


class QueueStatsMixin(SqlCore):
    def queue_stats(self, *, now: float | None = None) -> dict[str, Any]:
        """The last hour in ``BUCKETS`` buckets of ``BUCKET_S`` seconds, oldest first, the last
        ending at ``now``: the jobs queued at each bucket's end, and the jobs that reached a
        final state within it (a bucket is ``(end - BUCKET_S, end]``)."""
        now = time.time() if now is None else now
        ends = [now - BUCKET_S * (BUCKETS - 1 - i) for i in range(BUCKETS)]
        rows = self._read().execute(_history_sql(), (*ends, now - WINDOW_S)).fetchall()
        change, finished = [0] * (BUCKETS + 1), [0] * (BUCKETS + 1)
        queued = 0
        for row in rows:
            b = int(row["b"])
            if b < 0:
                queued = int(row["dq"] or 0)
            else:
                change[b], finished[b] = int(row["dq"] or 0), int(row["fin"] or 0)
        buckets = []
        for i, end in enumerate(ends):
            later = sum(change[i + 1:])  # the queue's change after this bucket's end
            # never below zero, even if a retention purge removed history within the hour
            buckets.append({"end": iso_from_ts(end), "queued": max(0, queued - later),
                            "finished": finished[i]})
        return {"bucket_s": BUCKET_S, "buckets": buckets}
