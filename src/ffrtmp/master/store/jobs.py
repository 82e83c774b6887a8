"""Operators' side of a job: submit, read, list, cancel and retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import (
    FINAL,
    QUEUE_RANK,
    RETRYABLE,
    UNSTARTED,
    Step,
)
from ffrtmp.logs import fields
from ffrtmp.master.store.errors import StateConflict, StoreError
from ffrtmp.master.store.protocol import Submission
from ffrtmp.master.store.records import job_row
from ffrtmp.master.store.rows import Conn, Row, attempt_dict, job_dict, transition_dict
from ffrtmp.master.store.split import SplitMixin
from ffrtmp.master.store.sqltext import in_chunks
from ffrtmp.master.store.transactions import after_commit


class JobsMixin(SplitMixin):
    def submit_job(self, spec: dict[str, Any], *, queue: str, priority: str,
                   capabilities: Sequence[str], intent: str | None, split_base: str | None = None,
                   now: float | None = None) -> dict[str, Any]:
        """Queue a job; a split job (``split_base``: where its workspace goes) is queued with
        its plan child, in one transaction."""
        item = Submission(spec, queue, priority, capabilities, intent, split_base)
        return self.get_job(self._queue_job(item, time.time() if now is None else now))

    def submit_jobs(self, items: Sequence[Submission], *,
                    now: float | None = None) -> list[dict[str, Any] | StoreError]:
        """``submit_job`` for each item, committed once; a refusal is that item's outcome.
        The jobs are read back after the commit, outside the write lock."""
        at = time.time() if now is None else now
        queued = self._each(items, lambda item: {"id": self._queue_job(item, at)})
        views = _job_views(self._read(), [done["id"] for done in queued if isinstance(done, dict)])
        return [views[done["id"]] if isinstance(done, dict) else done for done in queued]

    def _queue_job(self, item: Submission, now: float) -> str:
        with self._tx() as conn:
            if item.split_base is None:
                return self._insert_job(conn, item.spec, item.capabilities, now, queue=item.queue,
                                        priority=item.priority, intent=item.intent)
            return self._submit_split(conn, item.spec, item.capabilities, item.split_base, now,
                                      queue=item.queue, priority=item.priority, intent=item.intent)

    def get_job(self, job_id: str, *, with_history: bool = True) -> dict[str, Any]:
        conn = self._read()
        job = job_dict(job_row(conn, job_id, lock=self.FOR_UPDATE))
        if with_history:
            job["attempts"] = [attempt_dict(a) for a in conn.execute(
                "SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,))]
            job["history"] = [transition_dict(t) for t in conn.execute(
                "SELECT * FROM transitions WHERE job_id = ? ORDER BY id", (job_id,))]
        _name_nodes(conn, [job, *job.get("attempts", [])])
        return job

    def job_steps(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        """The step of each job found (None for an ordinary job), as ``get_job`` gives it:
        checking results needs only this, one statement per chunk, and a step never changes."""
        steps: dict[str, str | None] = {}
        for chunk, ids in in_chunks(job_ids):
            for row in self._read().execute(f"SELECT id, step FROM jobs WHERE id IN {ids}", chunk):
                steps[row["id"]] = row["step"] or None
        return steps

    def list_jobs(self, *, states: Sequence[str] = (), queue: str | None = None,
                  node_id: str | None = None, limit: int = 100, before: int | None = None,
                  parent_id: str | None = None, children: bool = False,
                  ) -> tuple[list[dict[str, Any]], int | None]:
        """Top-level jobs newest first (children too with ``children`` or ``node_id``: a node
        runs a split job's parts, never the job); ``before`` is the cursor (a job's ``seq``)
        returned as the second value. With ``parent_id``: that split job's children, oldest
        first, the cursor then being the last ``seq`` already listed."""
        if parent_id is not None:
            job_row(self._read(), parent_id)
        where, args = _filters(states, queue, node_id, parent_id, children)
        order = "ASC" if parent_id is not None else "DESC"
        if before is not None:
            where.append("seq > ?" if parent_id is not None else "seq < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read().execute(
            f"SELECT * FROM jobs {clause} ORDER BY seq {order} LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [job_dict(r) for r in rows]
        return _name_nodes(self._read(), jobs), (rows[-1]["seq"] if more else None)

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
            if self._split_action(conn, job_id, "cancel") == Step.SPLIT:
                self._cancel_split(conn, job_id, now)
            else:
                self._cancel_one(conn, job_row(conn, job_id, lock=self.FOR_UPDATE), now)
        return self.get_job(job_id)

    def _cancel_one(self, conn: Conn, job: Row, now: float) -> None:
        state, job_id = job["state"], job["id"]
        if state in FINAL:
            raise StateConflict("job_finished", f"job {job_id} already {state}")
        if state in UNSTARTED:
            self._cancel_unstarted(conn, job, now, "canceled by operator")
        else:  # running or lost: the node stops it and reports the outcome
            conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                         (now, job_id))
            after_commit(logging.INFO, "job %s: cancel requested", job_id,
                         extra=fields(job=job_id, node=job["node_id"]))

    def retry_job(self, job_id: str, *, now: float | None = None) -> dict[str, Any]:
        """A human's new attempt: the old attempt's token is fenced off (stale → 409)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            if self._split_action(conn, job_id, "retry") == Step.SPLIT:
                self._retry_split(conn, job_id, now)
            else:
                job = job_row(conn, job_id, lock=self.FOR_UPDATE)
                if job["state"] not in RETRYABLE:
                    raise StateConflict("not_retryable", f"job {job_id} is {job['state']}; only "
                                        "failed, canceled or lost jobs can be retried")
                self._requeue(conn, job, now, "retried by operator")
        return self.get_job(job_id)

    @staticmethod
    def _split_action(conn: Conn, job_id: str, action: str) -> str:
        """The job's step; a split job's child refuses an operator's ``action`` (409
        ``part_of_split``): only its parent is canceled or retried. Read without a lock, so
        a split job's children are locked before it (``split.py``); a step never changes."""
        job: Row = job_row(conn, job_id)
        if job["parent_id"] is not None:
            raise StateConflict("part_of_split", f"job {job_id} is the {job['step']} of split job "
                                f"{job['parent_id']}; {action} that job instead",
                                details={"parent_id": job["parent_id"]})
        return str(job["step"])


def _job_views(conn: Conn, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``get_job`` of many jobs (job id -> job), three statements per chunk of them."""
    views: dict[str, dict[str, Any]] = {}
    for chunk, ids in in_chunks(job_ids):
        for row in conn.execute(f"SELECT * FROM jobs WHERE id IN {ids}", chunk):
            views[row["id"]] = {**job_dict(row), "attempts": [], "history": []}
        for row in conn.execute(f"SELECT * FROM attempts WHERE job_id IN {ids} ORDER BY job_id,"
                                " attempt", chunk):
            views[row["job_id"]]["attempts"].append(attempt_dict(row))
        for row in conn.execute(f"SELECT * FROM transitions WHERE job_id IN {ids} ORDER BY id",
                                chunk):
            views[row["job_id"]]["history"].append(transition_dict(row))
    every = list(views.values())
    _name_nodes(conn, every + [a for view in every for a in view["attempts"]])
    return views


def _name_nodes(conn: Conn, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each job or attempt the name of its node (``node_name``), as operators know it;
    None when it has none or the node was removed since."""
    ids = sorted({i["node_id"] for i in items if i.get("node_id")})
    names = {} if not ids else {r["id"]: r["name"] for r in conn.execute(
        f"SELECT id, name FROM nodes WHERE id IN ({','.join('?' * len(ids))})", ids)}
    for item in items:
        item["node_name"] = names.get(item.get("node_id"))
    return items


def _filters(states: Sequence[str], queue: str | None, node_id: str | None,
             parent_id: str | None, children: bool) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a job listing, and their bound values."""
    where: list[str] = []
    args: list[Any] = []
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args.extend(states)
    for condition, value in (("queue_rank = ?", QUEUE_RANK[queue] if queue else None),
                             ("node_id = ?", node_id or None), ("parent_id = ?", parent_id)):
        if value is not None:
            where.append(condition)
            args.append(value)
    if parent_id is None and not children and not node_id:  # a node runs parts, not parents
        where.append("parent_id IS NULL")
    return where, args
