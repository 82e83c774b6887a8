"""Rows as both databases return them, and the plain dicts they leave the store as.

Timestamps leave as ISO-8601 UTC strings (milliseconds); JSON columns leave decoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ffrtmp.contract import DEFAULT_PRIORITY, DEFAULT_QUEUE, NodeStatus
from ffrtmp.isotime import iso_from_ts


class Row(Protocol):
    """``sqlite3.Row`` or ``postgres.PgRow``: indexed by position and by column name."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Row | None: ...
    def fetchall(self) -> list[Row]: ...
    def __iter__(self) -> Iterator[Row]: ...


class Conn(Protocol):
    """A connection the lifecycle SQL runs on; ``?`` marks each bound value."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def job_dict(row: Row) -> dict[str, Any]:
    spec = json.loads(row["spec"])
    return {
        "id": row["id"], "seq": row["seq"], "state": row["state"], "spec": spec,
        "queue": spec.get("queue", DEFAULT_QUEUE), "priority": spec.get("priority", DEFAULT_PRIORITY),
        "intent": row["intent"], "capabilities": json.loads(row["capabilities"]),
        "node_id": row["node_id"], "attempt": row["attempt"],
        "parent_id": row["parent_id"], "step": row["step"] or None,
        "cancel_requested": bool(row["cancel_requested"]), "progress": _loads(row["progress"]),
        "created_at": iso_from_ts(row["created_at"]), "updated_at": iso_from_ts(row["updated_at"]),
        "finished_at": iso_from_ts(row["finished_at"]),
    }


def attempt_dict(row: Row) -> dict[str, Any]:
    return {"attempt": row["attempt"], "node_id": row["node_id"], "state": row["state"],
            "assigned_at": iso_from_ts(row["assigned_at"]),
            "lease_expires_at": iso_from_ts(row["lease_expires_at"]),
            "started_at": iso_from_ts(row["started_at"]), "ended_at": iso_from_ts(row["ended_at"]),
            "result": _loads(row["result"])}


def transition_dict(row: Row) -> dict[str, Any]:
    return {"at": iso_from_ts(row["at"]), "from": row["from_state"], "to": row["to_state"],
            "attempt": row["attempt"], "node_id": row["node_id"], "reason": row["reason"]}


def node_status(row: Row) -> str:
    """The stored status, except that an online node with the drain flag is ``draining``."""
    if row["status"] == NodeStatus.ONLINE and row["draining"]:
        return NodeStatus.DRAINING.value
    return str(row["status"])


def node_readiness(row: Row) -> tuple[bool | None, str | None]:
    """Whether the node claims work, and why not: the master's view (offline, maintenance,
    draining) first, then what its agent reported in its last heartbeat. ``None``: an agent
    that does not report readiness, online and not drained."""
    reasons = []
    if row["status"] != NodeStatus.ONLINE:
        reasons.append(str(row["status"]))
    elif row["draining"]:
        reasons.append(NodeStatus.DRAINING.value)
    if row["ready"] == 0 and row["status"] == NodeStatus.ONLINE:
        reasons.append(row["ready_reason"] or "not ready")
    if reasons:
        return False, "; ".join(reasons)
    return (None if row["ready"] is None else True), None


def node_dict(row: Row, running: int) -> dict[str, Any]:
    ready, reason = node_readiness(row)
    return {"id": row["id"], "name": row["name"], "status": node_status(row),
            "ready": ready, "ready_reason": reason,
            "maintenance_since": iso_from_ts(row["maintenance_since"]),
            "draining": bool(row["draining"]), "slots": row["slots"], "running": running,
            "encoders": json.loads(row["encoders"]), "hwaccels": json.loads(row["hwaccels"]),
            "labels": json.loads(row["labels"]), "ffmpeg_version": row["ffmpeg_version"],
            "agent_version": row["agent_version"],
            "registered_at": iso_from_ts(row["registered_at"]),
            "last_heartbeat": iso_from_ts(row["last_heartbeat"])}
