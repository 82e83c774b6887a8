"""How the pages word what the API answers; every field another release adds may be missing.

``progress``, ``ready``/``ready_reason`` and ``status`` values such as ``maintenance`` arrive
as the API grows; a missing or malformed one is shown as a dash, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

FINAL = frozenset({"succeeded", "failed", "canceled", "lost"})
RETRYABLE = frozenset({"failed", "canceled", "lost"})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def percent(job: Mapping[str, Any]) -> float | None:
    """The job's progress in percent (0-100), 100 once it succeeded, None when unknown."""
    if job.get("state") == "succeeded":
        return 100.0
    progress = job.get("progress")
    value = _number(progress.get("percent")) if isinstance(progress, Mapping) else None
    return None if value is None else max(0.0, min(100.0, value))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_text(job: Mapping[str, Any]) -> str:
    """``42 % · 25 fps · 1.00x · ETA 12 s``: what of it the agent reported."""
    progress = job.get("progress")
    progress = progress if isinstance(progress, Mapping) else {}
    parts = []
    if (value := percent(job)) is not None:
        parts.append(f"{value:.0f} %")
    if (fps := _number(progress.get("fps"))) is not None:
        parts.append(f"{fps:.0f} fps")
    if (speed := _number(progress.get("speed"))) is not None:
        parts.append(f"{speed:.2f}x")
    if (eta := _number(progress.get("eta_s"))) is not None and job.get("state") not in FINAL:
        parts.append(f"ETA {_duration(eta)}")
    return " · ".join(parts) or "—"


def node_status(node: Mapping[str, Any]) -> str:
    """online, offline, draining or maintenance (a draining flag on an online node shows so)."""
    status = str(node.get("status") or "unknown")
    return "draining" if status == "online" and node.get("draining") else status


def ready_text(node: Mapping[str, Any]) -> str:
    """``yes``, ``no: <reason>`` or a dash for an agent that does not report readiness."""
    ready = node.get("ready")
    reason = node.get("ready_reason")
    if isinstance(ready, Mapping):  # {"ok": bool, "reason": str|null}, as the heartbeat sends it
        reason = reason or ready.get("reason")
        ready = ready.get("ok")
    if not isinstance(ready, bool):
        return "—"
    return "yes" if ready else f"no: {reason}" if reason else "no"


def size(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return "—"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def shown(value: Any) -> str:
    """A value in a cell: lists joined, dicts as JSON, None as a dash."""
    if value is None or value in ("", [], {}):
        return "—"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def running_jobs(node: Mapping[str, Any], listed: Mapping[str, list[Any]]) -> list[Any]:
    """A node's running jobs: the node's own list when the API gives one, else those listed."""
    own = node.get("running_jobs")
    return own if isinstance(own, list) else list(listed.get(str(node.get("id")), []))


FILTERS: dict[str, Callable[..., Any]] = {
    "percent": percent, "progress_text": progress_text, "node_status": node_status,
    "ready_text": ready_text, "size": size, "pretty": pretty, "shown": shown,
    "running_jobs": running_jobs, "is_final": lambda job: job.get("state") in FINAL,
    "retryable": lambda job: job.get("state") in RETRYABLE,
}
