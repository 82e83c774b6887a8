"""Unauthenticated probes: /health touches nothing; /ready asks the database and the shutdown flag."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("health", __name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@bp.get("/health")
def health():
    return jsonify({"status": "healthy", "timestamp": now_iso()})


@bp.get("/ready")
def ready():
    ext = current_app.extensions["ffrtmp"]
    checks = {}
    try:
        ext.store.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any database failure means not ready, and says why (one line)
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        checks["database"] = f"error: {first_line}"
    checks["shutdown"] = "shutting_down" if ext.shutdown.requested else "running"
    ok = checks["database"] == "ok" and not ext.shutdown.requested
    response = jsonify({"status": "ready" if ok else "not_ready", "checks": checks,
                        "timestamp": now_iso()})
    response.status_code = 200 if ok else 503
    return response


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = current_app.extensions["ffrtmp"].metrics.render()
    return Response(body, content_type=content_type)
