"""Operators' side of a job: submit, read, list, cancel and retry."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import (
    FINAL,
    PRIORITY_RANK,
    QUEUE_RANK,
    RETRYABLE,
    SETTLES_LATE,
    UNSTARTED,
    AttemptEnd,
    JobState,
)
from ffrtmp.logs import fields
from ffrtmp.master.store.errors import StateConflict
from ffrtmp.master.store.ids import ID_PREFIXES, new_id
from ffrtmp.master.store.records import job_row, transition
from ffrtmp.master.store.rows import attempt_dict, job_dict, transition_dict
from ffrtmp.master.store.sqltext import in_list
from ffrtmp.master.store.transactions import SqlCore, after_commit

# An attempt a retry fences off: its token then gets 409 (stale).
_LIVE_ATTEMPTS = in_list(SETTLES_LATE)


class JobsMixin(SqlCore):
    def submit_job(self, spec: dict[str, Any], *, queue: str, priority: str,
                   capabilities: Sequence[str], intent: str | None,
                   now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        job_id = new_id(ID_PREFIXES["job"])
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, state, spec, queue_rank, priority_rank, capabilities,"
                " intent, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobState.QUEUED.value, json.dumps(spec), QUEUE_RANK[queue],
                 PRIORITY_RANK[priority], json.dumps(sorted(capabilities)), intent, now, now))
            transition(conn, job_id, now, None, JobState.QUEUED, 0, None, "submitted")
        return self.get_job(job_id)

    def get_job(self, job_id: str, *, with_history: bool = True) -> dict[str, Any]:
        conn = self._read()
        job = job_dict(job_row(conn, job_id, lock=self.FOR_UPDATE))
        if with_history:
            job["attempts"] = [attempt_dict(a) for a in conn.execute(
                "SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,))]
            job["history"] = [transition_dict(t) for t in conn.execute(
                "SELECT * FROM transitions WHERE job_id = ? ORDER BY id", (job_id,))]
        return job

    def list_jobs(self, *, states: Sequence[str] = (), queue: str | None = None,
                  node_id: str | None = None, limit: int = 100,
                  before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; ``before`` is the cursor (a job's ``seq``) returned as the second value."""
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        for condition, value in (("queue_rank = ?", QUEUE_RANK[queue] if queue else None),
                                 ("node_id = ?", node_id or None), ("seq < ?", before)):
            if value is not None:
                where.append(condition)
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read().execute(
            f"SELECT * FROM jobs {clause} ORDER BY seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [job_dict(r) for r in rows], (rows[-1]["seq"] if more else None)

    def job_log(self, job_id: str) -> dict[str, Any]:
        conn = self._read()
        job = job_row(conn, job_id, lock=self.FOR_UPDATE)
        row = conn.execute("SELECT attempt, log_tail FROM attempts WHERE job_id = ?"
                           " ORDER BY attempt DESC LIMIT 1", (job_id,)).fetchone()
        return {"job_id": job_id, "attempt": job["attempt"],
                "log": (row["log_tail"] if row else None) or ""}

    def cancel_job(self, job_id: str, *, now: float | None = None) -> dict[str, Any]:
        """Queued/assigned jobs end at once; running ones are marked and canceled by their node."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job = job_row(conn, job_id, lock=self.FOR_UPDATE)
            state = job["state"]
            if state in FINAL:
                raise StateConflict("job_finished", f"job {job_id} already {state}")
            if state in UNSTARTED:
                conn.execute("UPDATE jobs SET state = ?, cancel_requested = 1, updated_at = ?,"
                             " finished_at = ? WHERE id = ?", (JobState.CANCELED.value, now, now, job_id))
                conn.execute("UPDATE attempts SET state = ?, ended_at = ? WHERE job_id = ? AND attempt = ?",
                             (JobState.CANCELED.value, now, job_id, job["attempt"]))
                transition(conn, job_id, now, state, JobState.CANCELED, job["attempt"],
                           job["node_id"], "canceled by operator")
            else:  # running or lost: the node stops it and reports the outcome
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                             (now, job_id))
                after_commit(logging.INFO, "job %s: cancel requested", job_id,
                             extra=fields(job=job_id, node=job["node_id"]))
        return self.get_job(job_id)

    def retry_job(self, job_id: str, *, now: float | None = None) -> dict[str, Any]:
        """A human's new attempt: the old attempt's token is fenced off (stale → 409)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job = job_row(conn, job_id, lock=self.FOR_UPDATE)
            if job["state"] not in RETRYABLE:
                raise StateConflict("not_retryable",
                                    f"job {job_id} is {job['state']}; only failed, canceled or lost "
                                    "jobs can be retried")
            conn.execute("UPDATE attempts SET state = ? WHERE job_id = ? AND attempt = ?"
                         f" AND state IN {_LIVE_ATTEMPTS}",
                         (AttemptEnd.SUPERSEDED.value, job_id, job["attempt"]))
            conn.execute("UPDATE jobs SET state = ?, node_id = NULL, cancel_requested = 0,"
                         " progress = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                         (JobState.QUEUED.value, now, job_id))
            transition(conn, job_id, now, job["state"], JobState.QUEUED, job["attempt"], None,
                       "retried by operator")
        return self.get_job(job_id)
