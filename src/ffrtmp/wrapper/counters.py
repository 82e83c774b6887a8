"""Layer 2: five boring counters and the last 50 SLA violations, shared by every wrapper.

Each wrapper is its own short-lived process, so the counters live on disk under the state
dir. Updates are read-modify-write under ``fcntl.flock`` on a separate lock file (the data
files are replaced by rename, so they can't carry the lock); readers need no lock because
every write is atomic. Nothing reads these to decide anything: they describe, never drive.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ffrtmp import logs
from ffrtmp.files import read_json, write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.layout import StateDir
from ffrtmp.wrapper.result import Result

log = logging.getLogger("ffrtmp.wrapper")

RING_SIZE = 50
COUNTER_NAMES = ("jobs_total", "jobs_success", "jobs_failed", "platform_sla_met",
                 "platform_sla_failed")
_HELP = {
    "jobs_total": "Jobs the wrapper followed to the end (run or attach).",
    "jobs_success": "Jobs that exited 0 (attach: ffmpeg reported progress=end).",
    "jobs_failed": "Jobs that did not succeed, whatever the cause.",
    "platform_sla_met": "Jobs where the platform met its own obligations.",
    "platform_sla_failed": "Jobs where the platform failed its obligations (see /violations).",
}


def counters_path(state_dir: Path) -> Path:
    return StateDir(Path(state_dir)).wrapper.counters


def violations_path(state_dir: Path) -> Path:
    return StateDir(Path(state_dir)).wrapper.violations


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    directory = StateDir(Path(state_dir)).wrapper
    directory.path.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _load(path: Path, empty: Any) -> Any:
    """The file's content; ``empty`` when missing. A corrupt file is set aside, not lost."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return empty
    except ValueError:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.replace(aside)
        log.error("%s was not valid JSON; moved it to %s and started afresh", path, aside)
        return empty


def read_counters(state_dir: Path) -> dict[str, int]:
    """All five counters (zero when nothing was recorded yet)."""
    try:
        data = read_json(counters_path(state_dir))
    except (FileNotFoundError, ValueError):
        data = {}
    return {name: int(data.get(name, 0)) for name in COUNTER_NAMES}


def read_violations(state_dir: Path) -> list[dict[str, Any]]:
    """The last SLA violations, newest first (at most 50)."""
    try:
        data = read_json(violations_path(state_dir))
    except (FileNotFoundError, ValueError):
        return []
    return data if isinstance(data, list) else []


def record(state_dir: Path, result: Result) -> None:
    """Count one finished job, and remember it if the platform failed its SLA."""
    extra = logs.fields(job=result.job_id, attempt=result.attempt)
    with _locked(state_dir):
        counters = _load(counters_path(state_dir), {})
        counts = {name: int(counters.get(name, 0)) for name in COUNTER_NAMES}
        counts["jobs_total"] += 1
        counts["jobs_success" if result.success else "jobs_failed"] += 1
        counts["platform_sla_met" if result.platform_sla else "platform_sla_failed"] += 1
        if not result.platform_sla:
            ring = _load(violations_path(state_dir), [])
            if not isinstance(ring, list):
                ring = []
            ring.insert(0, {
                "job_id": result.job_id, "attempt": result.attempt, "reason": result.reason,
                "time": result.end_time or iso(utc_now()), "exit_code": result.exit_code,
                "pid": result.pid, "runtime_s": result.runtime_s,
            })
            write_json_atomic(violations_path(state_dir), ring[:RING_SIZE])
        write_json_atomic(counters_path(state_dir), counts)
    log.debug("counters updated: %s", counts, extra=extra)


def prometheus_text(state_dir: Path) -> str:
    """The counters in Prometheus text format 0.0.4, for the agent's /wrapper/metrics."""
    counts = read_counters(state_dir)
    lines: list[str] = []
    for name in COUNTER_NAMES:
        metric = f"wrapper_{name}"
        lines += [f"# HELP {metric} {_HELP[name]}", f"# TYPE {metric} counter",
                  f"{metric} {counts[name]}"]
    return "\n".join(lines) + "\n"
