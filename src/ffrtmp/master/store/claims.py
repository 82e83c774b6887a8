"""Dispatch: a node claims queued jobs it can run, in queue, priority and FIFO order.

A split job itself is never claimed: its children are (``_NOT_SPLIT``).
"""

from __future__ import annotations

import json
import secrets
import time

from ffrtmp.contract import JobState, NodeStatus, Step
from ffrtmp.master.store.ids import token_hash
from ffrtmp.master.store.protocol import Assignment
from ffrtmp.master.store.records import node_row, running_count, transition
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.transactions import SqlCore

_BATCH = 200  # queued jobs read per step while skipping those the node cannot run
_NOT_SPLIT = f" AND step <> '{Step.SPLIT.value}'"  # a fixed name, never client text


class ClaimsMixin(SqlCore):
    def queue_marker(self) -> tuple[int, int]:
        """Changes when jobs are queued or leave the queue: a cheap read for long-polls."""
        row = self._read().execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM jobs WHERE state = ?"
                                   + _NOT_SPLIT,
                                   (JobState.QUEUED.value,)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def claim(self, node_id: str, slots: int, *, lease_s: float,
              now: float | None = None) -> list[Assignment]:
        """Assign up to ``slots`` queued jobs this node can run, in dispatch order."""
        now = time.time() if now is None else now
        if self.queue_marker()[0] == 0:  # nothing queued: answer without taking the write lock
            node_row(self._read(), node_id)
            return []
        with self._tx(durable=False) as conn:
            node = node_row(conn, node_id, lock=self.FOR_UPDATE)
            conn.execute("UPDATE nodes SET last_heartbeat = ?, status = ? WHERE id = ?",
                         (now, NodeStatus.ONLINE.value, node_id))
            if node["draining"]:
                return []
            capacity = min(slots, node["slots"] - running_count(conn, node_id))
            if capacity <= 0:
                return []
            have = set(json.loads(node["encoders"])) | set(json.loads(node["hwaccels"]))
            picked = self._pick(conn, capacity, have)
            return [_assign(conn, row, node_id, now=now, lease=now + lease_s) for row in picked]

    def _pick(self, conn: Conn, capacity: int, have: set[str]) -> list[Row]:
        """The first ``capacity`` queued jobs whose required capabilities the node has."""
        picked: list[Row] = []
        last = (-1, -1, -1)
        while len(picked) < capacity:
            batch = conn.execute(
                "SELECT id, seq, capabilities, attempt, queue_rank, priority_rank FROM jobs"
                " WHERE state = ? AND (queue_rank, priority_rank, seq) > (?, ?, ?)" + _NOT_SPLIT +
                f" ORDER BY queue_rank, priority_rank, seq LIMIT {_BATCH}" + self.SKIP_LOCKED,
                (JobState.QUEUED.value, *last)).fetchall()
            if not batch:
                break
            for row in batch:
                if set(json.loads(row["capabilities"])) <= have:
                    picked.append(row)
                    if len(picked) == capacity:
                        break
            tail = batch[-1]
            last = (tail["queue_rank"], tail["priority_rank"], tail["seq"])
        return picked


def _assign(conn: Conn, row: Row, node_id: str, *, now: float, lease: float) -> Assignment:
    """One queued job becomes this node's next attempt, with a fresh token and lease."""
    attempt = row["attempt"] + 1
    token = secrets.token_urlsafe(24)
    conn.execute("UPDATE jobs SET state = ?, node_id = ?, attempt = ?, progress = NULL, updated_at = ?"
                 " WHERE id = ?", (JobState.ASSIGNED.value, node_id, attempt, now, row["id"]))
    conn.execute(
        "INSERT INTO attempts (job_id, attempt, node_id, token_hash, state,"
        " assigned_at, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row["id"], attempt, node_id, token_hash(token), JobState.ASSIGNED.value, now, lease))
    transition(conn, row["id"], now, JobState.QUEUED, JobState.ASSIGNED, attempt, node_id, "claimed")
    spec = conn.execute("SELECT spec FROM jobs WHERE id = ?", (row["id"],)).fetchone()
    assert spec is not None  # noqa: S101 -- the row was locked and updated just above
    return Assignment(row["id"], attempt, token, lease, json.loads(spec["spec"]))
