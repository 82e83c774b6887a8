"""Unauthenticated probes: /health touches nothing; /ready asks the database and the shutdown flag."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, current_app, jsonify

from ffrtmp.isotime import now_iso
from ffrtmp.master.context import current
from ffrtmp.master.store.errors import first_line
from ffrtmp.master.store.protocol import Store

bp = Blueprint("health", __name__)

# A full or read-only database still answers SELECTs, so /ready also writes, at most this often
# per process; probes in between reuse the last outcome.
WRITE_CHECK_INTERVAL_S = 5.0


class WriteCheck:
    """The outcome of the last probe write, shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._outcome = "ok"

    def outcome(self, store: Store) -> str:
        # a probe already under way (a busy database can hold it for its lock timeout) is not
        # waited for: the caller gets the previous outcome
        if time.monotonic() - self._checked_at >= WRITE_CHECK_INTERVAL_S and \
                self._lock.acquire(blocking=False):
            try:
                self._outcome = self._probe(store)
                self._checked_at = time.monotonic()
            finally:
                self._lock.release()
        return self._outcome

    @staticmethod
    def _probe(store: Store) -> str:
        try:
            store.probe_write()
        except Exception as exc:  # any failure to write means not ready, and says why (one line)
            code = getattr(exc, "code", None)
            return f"error: {code}: {first_line(exc)}" if code else f"error: {first_line(exc)}"
        return "ok"


@bp.get("/health")
def health() -> Response:
    return jsonify({"status": "healthy", "timestamp": now_iso("seconds")})


@bp.get("/ready")
def ready() -> Response:
    ext = current()
    checks = {}
    try:
        ext.store.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any database failure means not ready, and says why (one line)
        checks["database"] = f"error: {first_line(exc)}"
    write_check = current_app.extensions.setdefault("ffrtmp.write_check", WriteCheck())
    checks["database_writes"] = write_check.outcome(ext.store)
    checks["shutdown"] = "shutting_down" if ext.shutdown.requested else "running"
    ok = checks["database"] == checks["database_writes"] == "ok" and not ext.shutdown.requested
    response = jsonify({"status": "ready" if ok else "not_ready", "checks": checks,
                        "timestamp": now_iso("seconds")})
    response.status_code = 200 if ok else 503
    return response


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = current().metrics.render()
    return Response(body, content_type=content_type)
