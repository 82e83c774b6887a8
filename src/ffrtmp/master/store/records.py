"""Reads and writes that several lifecycle changes share, inside their transaction."""

from __future__ import annotations

import functools
import logging

from ffrtmp.contract import BUSY, JobState, Step
from ffrtmp.logs import fields
from ffrtmp.master.store.errors import RecordNotFound
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.sqltext import in_list
from ffrtmp.master.store.transactions import after_commit, tally, touch

# A node's slot is taken from assignment until the attempt ends.
BUSY_STATES = in_list(BUSY)
# The ``job_counts`` key that counts every time a job became queued: the queue's version.
QUEUE_VERSION = "queue_version"


def job_row(conn: Conn, job_id: str, *, lock: str = "") -> Row:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?" + lock, (job_id,)).fetchone()
    if row is None:
        raise RecordNotFound("job_not_found", f"no job {job_id}")
    return row


def split_link(job: Row) -> str | None:
    """The split job that a change to ``job`` settles: itself, its parent, or none."""
    return str(job["id"]) if job["step"] == Step.SPLIT else job["parent_id"]


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
               attempt: int, node_id: str | None, reason: str, *, split: bool = False) -> None:
    """Every state change leaves a history row and, once committed, one log line; the job is
    touched, so what the change implies (its split parent's state) settles in the same transaction.

    The per-state counters change in the same transaction too, tallied and written once before
    it commits (a split job, ``split``, counts as its parts, not once more itself), and a job
    that becomes queued moves the queue's version, which wakes long-polled claims."""
    conn.execute(
        "INSERT INTO transitions (job_id, at, from_state, to_state, attempt, node_id, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (job_id, now, from_state, to_state, attempt, node_id, reason))
    if not split:
        tally(_write_counts, str(to_state), 1)
        if from_state is not None:
            tally(_write_counts, str(from_state), -1)
        if to_state == JobState.QUEUED:
            tally(_write_counts, QUEUE_VERSION, 1)
    touch(job_id, now)
    after_commit(logging.INFO, "job %s: %s -> %s (%s)", job_id, from_state or "-", to_state, reason,
                 extra=fields(job=job_id, node=node_id, attempt=attempt or None))


def count_jobs(conn: Conn, deltas: dict[str, int], *, shard: int | None = None) -> None:
    """Add ``deltas`` (key -> change) to this writer's counter rows. Each connection has its
    own rows (``count_shard``: PostgreSQL's backend id; SQLite has one writer at a time), so
    concurrent transactions never wait on each other's counters; ``counts()`` sums them.
    Row 0 is nobody's: the rows of connections gone are folded into it (``fold_counts``)."""
    items = [(key, change) for key, change in sorted(deltas.items()) if change]
    if not items:
        return
    shard = int(getattr(conn, "count_shard", 0)) if shard is None else shard
    conn.execute(_count_sql(len(items)), [v for key, change in items for v in (key, shard, change)])


def _write_counts(conn: Conn, tallied: dict[str, float]) -> None:
    """A transaction's state changes, counted once before it commits (``transactions.tally``)."""
    count_jobs(conn, {key: int(change) for key, change in tallied.items()})


@functools.lru_cache(maxsize=16)
def _count_sql(rows: int) -> str:
    return ("INSERT INTO job_counts (key, shard, n) VALUES "
            + ", ".join(["(?, ?, ?)"] * rows)
            + " ON CONFLICT (key, shard) DO UPDATE SET n = job_counts.n + excluded.n")


def fold_counts(conn: Conn, skip_locked: str) -> None:
    """Move every writer's counter rows into row 0, so they stay few however often the
    connections change; a row a writer holds now (``skip_locked``) is left for next time."""
    rows = conn.execute("SELECT key, shard, n FROM job_counts WHERE shard <> 0"
                        + skip_locked).fetchall()
    deltas: dict[str, int] = {}
    for row in rows:
        deltas[row["key"]] = deltas.get(row["key"], 0) + int(row["n"])
        conn.execute("DELETE FROM job_counts WHERE key = ? AND shard = ?", (row["key"], row["shard"]))
    count_jobs(conn, deltas, shard=0)


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
