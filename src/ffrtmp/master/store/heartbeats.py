"""A node's heartbeat: liveness and progress in, cancel requests and the drain flag out.

It also reconciles: an attempt its live node stops listing ends ``lost`` after a grace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import JobState, NodeStatus
from ffrtmp.logs import fields
from ffrtmp.master.store.progress import stamped
from ffrtmp.master.store.records import end_lost, node_row, transition
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.transactions import SqlCore, after_commit, touch


class HeartbeatsMixin(SqlCore):
    def heartbeat(self, node_id: str, running: Sequence[dict[str, Any]], *,
                  unlisted_after_s: float | None = None, ready: dict[str, Any] | None = None,
                  now: float | None = None) -> dict[str, Any]:
        """Record liveness, readiness and progress; return cancel requests and the drain flag.

        With ``unlisted_after_s``, the node's running attempts are reconciled with ``running``.
        ``ready`` is the agent's own verdict (``{"ok", "reason"}``); None keeps the last one.
        A node back from offline or maintenance is online again (still drained, if it was).
        """
        now = time.time() if now is None else now
        cancel: list[dict[str, Any]] = []
        with self._tx(durable=False) as conn:
            node = node_row(conn, node_id)
            conn.execute("UPDATE nodes SET last_heartbeat = ?, status = ?, maintenance_since = NULL"
                         " WHERE id = ?", (now, NodeStatus.ONLINE.value, node_id))
            if ready is not None:
                _record_ready(conn, node, ready)
            if node["status"] != NodeStatus.ONLINE:
                after_commit(logging.INFO, "node %s is back online (was %s)%s", node_id, node["status"],
                             "; still drained: ffrtmp nodes undrain gives it jobs again"
                             if node["draining"] else "", extra=fields(node=node_id))
            for item in running:
                job = conn.execute(
                    "SELECT j.id, j.cancel_requested, j.parent_id, j.attempt AS current_attempt FROM jobs j"
                    " JOIN attempts a ON a.job_id = j.id AND a.attempt = ?"
                    " WHERE j.id = ? AND a.node_id = ?",
                    (item["attempt"], item["job_id"], node_id)).fetchone()
                if job is None or job["current_attempt"] != item["attempt"]:
                    continue
                if job["cancel_requested"]:
                    cancel.append({"job_id": job["id"], "attempt": item["attempt"]})
                if item.get("progress") is not None:
                    conn.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                                 (stamped(item["progress"], now), job["id"]))
                    if job["parent_id"] is not None:  # its split job's progress follows
                        touch(job["id"], now)
            if unlisted_after_s is not None:
                _reconcile(conn, node_id, running, unlisted_after_s, now)
        return {"cancel": cancel, "drain": bool(node["draining"])}


def _record_ready(conn: Conn, node: Row, ready: dict[str, Any]) -> None:
    """Store the agent's readiness; a change is logged once, here, for the whole farm's log."""
    ok, reason = int(bool(ready["ok"])), (None if ready["ok"] else ready.get("reason") or "not ready")
    if (node["ready"], node["ready_reason"]) == (ok, reason):
        return
    conn.execute("UPDATE nodes SET ready = ?, ready_reason = ? WHERE id = ?", (ok, reason, node["id"]))
    if ok:
        after_commit(logging.INFO, "node %s is ready again", node["name"], extra=fields(node=node["id"]))
    else:
        after_commit(logging.WARNING, "node %s is not ready: %s", node["name"], reason,
                     extra=fields(node=node["id"]))


def _reconcile(conn: Conn, node_id: str, running: Sequence[dict[str, Any]],
               after_s: float, now: float) -> None:
    """A running attempt its live node has stopped listing for ``after_s`` ends ``lost``.

    The clock starts at the first heartbeat that leaves it out (kept in the attempt, so it
    survives master restarts and works across masters) and stops when it is listed again:
    one heartbeat never ends an attempt. Assigned attempts keep their lease instead: never
    confirmed, they go back to the queue.
    """
    listed = {(item["job_id"], item["attempt"]) for item in running}
    rows = conn.execute(
        "SELECT a.job_id, a.attempt, a.unlisted_since FROM attempts a"
        " JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt"
        " WHERE a.node_id = ? AND a.state = ? AND j.state = ?",
        (node_id, JobState.RUNNING.value, JobState.RUNNING.value)).fetchall()
    for row in rows:
        key = (row["job_id"], row["attempt"])
        since = row["unlisted_since"]
        if (key in listed) != (since is None):  # listed again, or left out for the first time
            conn.execute("UPDATE attempts SET unlisted_since = ? WHERE job_id = ? AND attempt = ?",
                         (None if key in listed else now, *key))
        if key in listed or since is None or now - since <= after_s:
            continue
        if not end_lost(conn, row["job_id"], row["attempt"], now, ended_at=True):
            continue
        transition(conn, row["job_id"], now, JobState.RUNNING, JobState.LOST, row["attempt"], node_id,
                   f"node no longer knows this attempt: not in its heartbeats for {now - since:.0f}s")
        after_commit(logging.WARNING, "job %s: its node no longer knows attempt %d; ended as lost",
                     row["job_id"], row["attempt"],
                     extra=fields(job=row["job_id"], node=node_id, attempt=row["attempt"]))

