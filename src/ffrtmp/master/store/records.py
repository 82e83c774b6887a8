"""Reads and writes that several lifecycle changes share, inside their transaction."""

from __future__ import annotations

import logging

from ffrtmp.contract import BUSY, JobState
from ffrtmp.logs import fields
from ffrtmp.master.store.errors import RecordNotFound
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.sqltext import in_list
from ffrtmp.master.store.transactions import after_commit, touch

# A node's slot is taken from assignment until the attempt ends.
BUSY_STATES = in_list(BUSY)


def job_row(conn: Conn, job_id: str, *, lock: str = "") -> Row:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?" + lock, (job_id,)).fetchone()
    if row is None:
        raise RecordNotFound("job_not_found", f"no job {job_id}")
    return row


def node_row(conn: Conn, node_id: str, *, lock: str = "") -> Row:
    row = conn.execute("SELECT * FROM nodes WHERE id = ?" + lock, (node_id,)).fetchone()
    if row is None:
        raise RecordNotFound("node_not_found", f"no node {node_id}")
    return row


def running_count(conn: Conn, node_id: str) -> int:
    row = conn.execute(f"SELECT COUNT(*) FROM jobs WHERE node_id = ? AND state IN {BUSY_STATES}",
                       (node_id,)).fetchone()
    return int(row[0]) if row else 0


def transition(conn: Conn, job_id: str, now: float, from_state: str | None, to_state: str,
               attempt: int, node_id: str | None, reason: str) -> None:
    """Every state change leaves a history row and, once committed, one log line; the job is
    touched, so what the change implies (its split parent's state) settles in the same transaction."""
    conn.execute(
        "INSERT INTO transitions (job_id, at, from_state, to_state, attempt, node_id, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (job_id, now, from_state, to_state, attempt, node_id, reason))
    touch(job_id, now)
    after_commit(logging.INFO, "job %s: %s -> %s (%s)", job_id, from_state or "-", to_state, reason,
                 extra=fields(job=job_id, node=node_id, attempt=attempt or None))


def end_lost(conn: Conn, job_id: str, attempt: int, now: float, *, ended_at: bool) -> bool:
    """A running attempt becomes lost, unless its result arrived meanwhile (then False).

    Reconciliation knows when the attempt ended; a node gone silent does not (``ended_at``).
    """
    marked = conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state = ?"
                          " AND attempt = ?",
                          (JobState.LOST.value, now, job_id, JobState.RUNNING.value, attempt))
    if marked.rowcount != 1:
        return False
    if ended_at:
        conn.execute("UPDATE attempts SET state = ?, ended_at = ? WHERE job_id = ? AND attempt = ?",
                     (JobState.LOST.value, now, job_id, attempt))
    else:
        conn.execute("UPDATE attempts SET state = ? WHERE job_id = ? AND attempt = ?",
                     (JobState.LOST.value, job_id, attempt))
    return True
