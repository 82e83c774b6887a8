"""An attempt's own reports: its node confirms the start, then delivers the result.

Both are idempotent for the same token, and a stale token is refused (409), so an agent may
resend either after any failure without running or deciding anything twice. ``start_many`` and
``record_results`` run the same single-item methods as one ``batch()``: one commit for them
all, each item refused on its own (its savepoint rolled back) without undoing the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from ffrtmp.contract import SETTLES_LATE, JobState
from ffrtmp.master.store.errors import NotPermitted, StateConflict, StoreError
from ffrtmp.master.store.ids import token_hash
from ffrtmp.master.store.progress import finished
from ffrtmp.master.store.protocol import BUCKETS
from ffrtmp.master.store.records import job_row, split_link, transition
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.transactions import SqlCore, note_link, tally

LOG_TAIL_CHARS = 65536  # what an attempt keeps of its FFmpeg log
T = TypeVar("T")
# one result to record: (job id, attempt token, result fields, log tail)
ResultItem = tuple[str, str, dict[str, Any], str]


class AttemptsMixin(SqlCore):
    def _attempt_for_token(self, conn: Conn, job_id: str, node_id: str,
                           token: str) -> tuple[Row, Row]:
        job = job_row(conn, job_id, lock=self.FOR_UPDATE)
        note_link(job_id, split_link(job))
        attempt = conn.execute("SELECT * FROM attempts WHERE token_hash = ?",
                               (token_hash(token),)).fetchone()
        if attempt is None or attempt["job_id"] != job_id:
            raise StateConflict("stale_attempt", f"attempt token is not valid for job {job_id}")
        if attempt["node_id"] != node_id:
            raise NotPermitted("not_your_attempt", f"attempt {attempt['attempt']} of job {job_id} "
                               "belongs to another node")
        return job, attempt

    def start(self, job_id: str, node_id: str, token: str, *,
              now: float | None = None) -> dict[str, Any]:
        """Confirm the workload started: assigned → running (idempotent for the same token)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job, attempt = self._attempt_for_token(conn, job_id, node_id, token)
            n = attempt["attempt"]
            if attempt["state"] == JobState.RUNNING:
                return {"job_id": job_id, "attempt": n, "state": JobState.RUNNING.value}
            if attempt["state"] != JobState.ASSIGNED or job["attempt"] != n:
                raise StateConflict("stale_attempt", f"attempt {n} of job {job_id} is "
                                    f"{attempt['state']}; do not run it")
            conn.execute("UPDATE attempts SET state = ?, started_at = ? WHERE job_id = ? AND attempt = ?",
                         (JobState.RUNNING.value, now, job_id, n))
            conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                         (JobState.RUNNING.value, now, job_id))
            transition(conn, job_id, now, JobState.ASSIGNED, JobState.RUNNING, n, node_id,
                       "workload started")
        return {"job_id": job_id, "attempt": n, "state": JobState.RUNNING.value}

    def record_result(self, job_id: str, node_id: str, token: str, result: dict[str, Any], *,
                      log_tail: str = "", now: float | None = None) -> dict[str, Any]:
        """Decide the job from its current attempt's result; a duplicate delivery is a no-op."""
        now = time.time() if now is None else now
        outcome = result["outcome"]
        with self._tx() as conn:
            job, attempt = self._attempt_for_token(conn, job_id, node_id, token)
            n = attempt["attempt"]
            if attempt["result"] is not None:
                if json.loads(attempt["result"]) == result:
                    return {"job_id": job_id, "attempt": n, "state": job["state"]}
                raise StateConflict("result_conflict",
                                    f"attempt {n} of job {job_id} already reported a different result")
            if job["attempt"] != n or attempt["state"] not in SETTLES_LATE:
                raise StateConflict("stale_attempt", f"attempt {n} of job {job_id} is "
                                    f"{attempt['state']}; its result is not accepted")
            started = attempt["started_at"] or now
            conn.execute("UPDATE attempts SET state = ?, ended_at = ?, result = ?, log_tail = ?,"
                         " started_at = ? WHERE job_id = ? AND attempt = ?",
                         (outcome, now, json.dumps(result), log_tail[-LOG_TAIL_CHARS:], started,
                          job_id, n))
            if job["state"] == JobState.CANCELED:  # canceled while assigned; keep the operator's word
                return {"job_id": job_id, "attempt": n, "state": JobState.CANCELED.value}
            # a success's last report came a moment before its end: its progress ends at 100 %
            progress = finished(job["progress"], now) if outcome == JobState.SUCCEEDED else None
            conn.execute("UPDATE jobs SET state = ?, updated_at = ?, finished_at = ?,"
                         " progress = COALESCE(?, progress) WHERE id = ?",
                         (outcome, now, now, progress, job_id))
            reason = result.get("reason") or outcome
            if job["state"] == JobState.LOST:
                reason += " (late result after lost)"
            transition(conn, job_id, now, job["state"], outcome, n, node_id, reason)
            _observe("queue_wait", started - job["created_at"])
            _observe("run", now - started)
        return {"job_id": job_id, "attempt": n, "state": outcome}


    def start_many(self, node_id: str, items: Sequence[tuple[str, str]], *,
                   now: float | None = None) -> list[dict[str, Any] | StoreError]:
        """``start`` for each (job id, token), committed once; a refusal is that item's outcome."""
        return self._each(items, lambda item: self.start(item[0], node_id, item[1], now=now))

    def record_results(self, node_id: str, items: Sequence[ResultItem], *,
                       now: float | None = None) -> list[dict[str, Any] | StoreError]:
        """``record_result`` for each item, committed once; a refusal is that item's outcome."""
        return self._each(items, lambda item: self.record_result(
            item[0], node_id, item[1], item[2], log_tail=item[3], now=now))


def _observe(metric: str, value: float) -> None:
    """Count ``value`` in the one bucket it falls in (``counts()`` makes them cumulative),
    tallied with the transaction's other observations and written once before it commits."""
    value = max(0.0, value)
    le = next(b for b in BUCKETS if value <= b)
    tally(_write_histograms, ("bucket", metric, le if le != float("inf") else 1e308), 1)
    tally(_write_histograms, ("total", metric), value)
    tally(_write_histograms, ("count", metric), 1)


def _write_histograms(conn: Conn, tallied: dict[Any, float]) -> None:
    buckets = [(key[1], key[2], int(n)) for key, n in sorted(tallied.items()) if key[0] == "bucket"]
    metrics = sorted(key[1] for key in tallied if key[0] == "count")
    if buckets:
        conn.execute(
            "INSERT INTO histograms (metric, le, count) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(buckets))
            + " ON CONFLICT (metric, le) DO UPDATE SET count = histograms.count + excluded.count",
            [v for row in buckets for v in row])
    if metrics:
        conn.execute(
            "INSERT INTO histogram_sums (metric, total, count) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(metrics))
            + " ON CONFLICT (metric) DO UPDATE SET total = histogram_sums.total + excluded.total,"
            " count = histogram_sums.count + excluded.count",
            [v for m in metrics for v in (m, tallied[("total", m)], int(tallied[("count", m)]))])
