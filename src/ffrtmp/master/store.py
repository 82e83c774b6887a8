"""The job store's interface: what views, duties and metrics may ask of it, and its errors.

Views call named methods and get plain dicts back; ``StoreError`` subclasses carry the HTTP
meaning (not found, conflict, forbidden) without the store knowing about Flask. The SQL lives
in ``sqlstore`` (the lifecycle transactions) and ``sqlite`` / ``postgres`` (connections, schema).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

QUEUE_RANK = {"live": 0, "default": 1, "batch": 2}
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
FINAL = ("succeeded", "failed", "canceled")
RETRYABLE = ("failed", "canceled", "lost")
# Buckets of the queue-wait and run-time histograms (seconds).
BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, float("inf"))

class StoreError(Exception):
    """A request the lifecycle rules refuse; ``kind`` maps to an HTTP status."""

    kind = "conflict"

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class NotFound(StoreError):
    kind = "not_found"


class Conflict(StoreError):
    kind = "conflict"


class Forbidden(StoreError):
    kind = "forbidden"


class Unavailable(StoreError):
    """The database cannot serve a request now (full, read-only, busy, away): a 503 to retry.

    Codes: ``store_full``, ``store_read_only``, ``store_busy``, ``store_unavailable``. Each store
    translates its driver's errors into these in one place (``SqlStore._translated``).
    """

    kind = "unavailable"

    def __init__(self, code: str, cause: BaseException) -> None:
        super().__init__(code, f"the database cannot serve this now: {first_line(cause)}")


def first_line(exc: BaseException) -> str:
    """A driver's message can span lines (context, hints); answers and probes show the first."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ID_PREFIXES = {"job": "j", "node": "n"}  # the API routes ids by these (app.id_converter)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Assignment:
    job_id: str
    attempt: int
    attempt_token: str
    lease_expires_at: float
    spec: dict[str, Any]


class Store(Protocol):
    """What the API, the scheduler and the metrics need of a store; SQL stays behind it.

    A PostgreSQL store implements the same methods (claims with ``FOR UPDATE SKIP LOCKED``).
    """

    def migrate(self) -> int: ...
    def ping(self) -> None: ...
    def probe_write(self, *, now: float | None = None) -> None: ...
    def close(self) -> None: ...
    def queue_marker(self) -> tuple[int, int]: ...
    def submit_job(self, spec: dict[str, Any], *, queue: str, priority: str,
                   capabilities: Sequence[str], intent: str | None) -> dict[str, Any]: ...
    def get_job(self, job_id: str) -> dict[str, Any]: ...
    def list_jobs(self, *, states: Sequence[str] = (), queue: str | None = None,
                  node_id: str | None = None, limit: int = 100,
                  before: int | None = None) -> tuple[list[dict[str, Any]], int | None]: ...
    def job_log(self, job_id: str) -> dict[str, Any]: ...
    def cancel_job(self, job_id: str) -> dict[str, Any]: ...
    def retry_job(self, job_id: str) -> dict[str, Any]: ...
    def register_node(self, *, name: str, slots: int, encoders: Sequence[str],
                      hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                      agent_version: str, live_s: float,
                      heard_since: float = 0.0) -> tuple[dict[str, Any], str, bool]: ...
    def refresh_node(self, node_id: str, *, name: str, slots: int, encoders: Sequence[str],
                     hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                     agent_version: str) -> dict[str, Any]: ...
    def node_for_credential(self, credential: str) -> str | None: ...
    def get_node(self, node_id: str) -> dict[str, Any]: ...
    def list_nodes(self) -> list[dict[str, Any]]: ...
    def set_draining(self, node_id: str, draining: bool) -> dict[str, Any]: ...
    def remove_node(self, node_id: str) -> None: ...
    def heartbeat(self, node_id: str, running: Sequence[dict[str, Any]], *,
                  unlisted_after_s: float | None = None) -> dict[str, Any]: ...
    def claim(self, node_id: str, slots: int, *, lease_s: float) -> list[Assignment]: ...
    def start(self, job_id: str, node_id: str, token: str) -> dict[str, Any]: ...
    def record_result(self, job_id: str, node_id: str, token: str, result: dict[str, Any], *,
                      log_tail: str = "") -> dict[str, Any]: ...
    def try_duty(self, name: str, interval_s: float, *, now: float | None = None) -> bool: ...
    def expire_leases(self, *, now: float | None = None) -> list[str]: ...
    def mark_offline(self, timeout_s: float, *, now: float | None = None) -> list[str]: ...
    def purge_finished(self, retention_days: int, *, now: float | None = None) -> int: ...
    def counts(self) -> dict[str, Any]: ...


def iso(ts: float | None) -> str | None:
    """Timestamps leave the store as ISO-8601 UTC strings."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def job_dict(row: Any) -> dict[str, Any]:
    spec = json.loads(row["spec"])
    return {
        "id": row["id"], "seq": row["seq"], "state": row["state"], "spec": spec,
        "queue": spec.get("queue", "default"), "priority": spec.get("priority", "medium"),
        "intent": row["intent"], "capabilities": json.loads(row["capabilities"]),
        "node_id": row["node_id"], "attempt": row["attempt"],
        "cancel_requested": bool(row["cancel_requested"]), "progress": _loads(row["progress"]),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "finished_at": iso(row["finished_at"]),
    }


def attempt_dict(row: Any) -> dict[str, Any]:
    return {"attempt": row["attempt"], "node_id": row["node_id"], "state": row["state"],
            "assigned_at": iso(row["assigned_at"]), "lease_expires_at": iso(row["lease_expires_at"]),
            "started_at": iso(row["started_at"]), "ended_at": iso(row["ended_at"]),
            "result": _loads(row["result"])}


def node_dict(row: Any, running: int) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "status": row["status"],
            "draining": bool(row["draining"]), "slots": row["slots"], "running": running,
            "encoders": json.loads(row["encoders"]), "hwaccels": json.loads(row["hwaccels"]),
            "labels": json.loads(row["labels"]), "ffmpeg_version": row["ffmpeg_version"],
            "agent_version": row["agent_version"], "registered_at": iso(row["registered_at"]),
            "last_heartbeat": iso(row["last_heartbeat"])}


def open_store(url: str) -> Store:
    """Open the store a database URL names (the URL was validated by the settings)."""
    if url.startswith("sqlite:///"):
        from ffrtmp.master.sqlite import SqliteStore

        return SqliteStore(url[len("sqlite:///"):])
    from ffrtmp.master.postgres import PostgresStore

    return PostgresStore(url)
