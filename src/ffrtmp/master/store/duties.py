"""Background duties: functions of (store, now) that exactly one process runs per interval.

Each update names the state it expects, so a start or a result that lands at the same
moment always wins cleanly.
"""

from __future__ import annotations

import logging
import time

from ffrtmp.contract import FINAL, AttemptEnd, JobState, NodeStatus, Step
from ffrtmp.logs import fields
from ffrtmp.master.store.records import count_jobs, end_lost, fold_counts, transition
from ffrtmp.master.store.sqltext import in_list
from ffrtmp.master.store.transactions import SqlCore, after_commit, log

_FINAL_STATES = in_list(FINAL)
# Top-level jobs final before the cutoff whose children (a split job's) are all final too.
# A failed split job still holds intermediates for a retry: retention first gives it up
# (``_retire``: it is swept and canceled), and purges it a retention period later.
_PURGEABLE = (f"SELECT p.id FROM jobs p WHERE p.parent_id IS NULL AND p.state IN {_FINAL_STATES}"
              f" AND NOT (p.step = '{Step.SPLIT.value}' AND p.state = '{JobState.FAILED.value}')"
              f" AND p.finished_at < ? AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = p.id"
              f" AND c.state NOT IN {_FINAL_STATES})")


class DutiesMixin(SqlCore):
    def try_duty(self, name: str, interval_s: float, *, now: float | None = None,
                 holder: str | None = None) -> bool:
        """True for exactly one caller per interval across every process sharing the database;
        the winner is recorded as the duty's ``holder`` (a master id), with the time."""
        now = time.time() if now is None else now
        with self._tx(durable=False) as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)"
                         " ON CONFLICT DO NOTHING", (name,))
            cur = conn.execute("UPDATE duties SET next_run_at = ?, holder = ?, held_at = ?"
                               " WHERE name = ? AND next_run_at <= ?",
                               (now + interval_s, holder, now, name, now))
            return cur.rowcount == 1

    def expire_leases(self, *, now: float | None = None) -> list[str]:
        """Unconfirmed assignments past their lease go back to the queue."""
        now = time.time() if now is None else now
        expired = []
        assigned, queued = JobState.ASSIGNED.value, JobState.QUEUED.value
        with self._tx(durable=False) as conn:
            rows = conn.execute("SELECT a.job_id, a.attempt, a.node_id FROM attempts a"
                                " JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt"
                                " WHERE a.state = ? AND j.state = ? AND a.lease_expires_at < ?",
                                (assigned, assigned, now)).fetchall()
            for row in rows:
                requeued = conn.execute(
                    "UPDATE jobs SET state = ?, node_id = NULL, updated_at = ?"
                    " WHERE id = ? AND state = ? AND attempt = ?",
                    (queued, now, row["job_id"], assigned, row["attempt"]))
                if requeued.rowcount != 1:  # started or canceled meanwhile
                    continue
                conn.execute("UPDATE attempts SET state = ? WHERE job_id = ? AND attempt = ?",
                             (AttemptEnd.EXPIRED.value, row["job_id"], row["attempt"]))
                transition(conn, row["job_id"], now, assigned, queued, row["attempt"],
                           row["node_id"], "lease expired before the node confirmed start")
                expired.append(row["job_id"])
        return expired

    def mark_offline(self, timeout_s: float, *, now: float | None = None) -> list[str]:
        """Silent nodes go offline; their running jobs become lost (never re-run automatically).

        Only online nodes: a node in maintenance (its agent said it stopped on purpose, after a
        drain) stays so however long it is away, its jobs untouched, until it heartbeats again
        or an operator removes it; its jobs keep running on the host meanwhile."""
        now = time.time() if now is None else now
        lost = []
        with self._tx(durable=False) as conn:
            nodes = conn.execute("SELECT id FROM nodes WHERE status = ? AND last_heartbeat < ?",
                                 (NodeStatus.ONLINE.value, now - timeout_s)).fetchall()
            for node in nodes:
                conn.execute("UPDATE nodes SET status = ? WHERE id = ?",
                             (NodeStatus.OFFLINE.value, node["id"]))
                after_commit(logging.WARNING, "node %s is offline: no heartbeat for %.0fs", node["id"],
                             timeout_s, extra=fields(node=node["id"]))
                for job in conn.execute("SELECT id, attempt FROM jobs WHERE node_id = ? AND state = ?",
                                        (node["id"], JobState.RUNNING.value)).fetchall():
                    if not end_lost(conn, job["id"], job["attempt"], now, ended_at=False):
                        continue  # its result arrived meanwhile
                    transition(conn, job["id"], now, JobState.RUNNING, JobState.LOST, job["attempt"],
                               node["id"], "node stopped heartbeating")
                    lost.append(job["id"])
        return lost

    def purge_finished(self, retention_days: int, *, now: float | None = None) -> int:
        """Remove top-level jobs final for ``retention_days``, a split job with its children
        (once every child is final too); a child never goes alone. Returns the top-level count."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            cutoff = (now - retention_days * 86400,)
            self._retire(conn, cutoff[0], now)
            gone = conn.execute(f"DELETE FROM jobs WHERE parent_id IN ({_PURGEABLE})"
                                " RETURNING state, step", cutoff).fetchall()
            top = conn.execute(f"DELETE FROM jobs WHERE id IN ({_PURGEABLE}) RETURNING state, step",
                               cutoff).fetchall()
            count = len(top)
            deltas: dict[str, int] = {}
            for row in (*gone, *top):
                if row["step"] != Step.SPLIT:  # a split job counts as its parts
                    deltas[row["state"]] = deltas.get(row["state"], 0) - 1
            count_jobs(conn, deltas)
            fold_counts(conn, self.SKIP_LOCKED)
        if count:
            log.info("removed %d finished job(s) older than %d days", count, retention_days)
        return count
