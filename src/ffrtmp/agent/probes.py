"""Readiness: ffmpeg present, disk under FFRTMP_DISK_LIMIT_PERCENT (90 %) where the node writes,
the last heartbeat's outcome, and the media store answering (when one is configured: a node that
cannot deliver claims nothing).

The agent claims only while ready. It says so once when it stops (a WARNING with the reason)
and once when it resumes (INFO), not at every pass; each heartbeat carries the verdict
(``verdict``: every check but the master's, which the heartbeat itself answers), so the
master shows it in ``nodes list``.

"Where the node writes" is the work dir and every media root (FFmpeg's outputs land under
them), each filesystem counted once; a media root that does not exist yet is not checked.

``/ready`` never sends a heartbeat of its own: it reports the outcome the main loop recorded,
and calls it ``timeout`` when that outcome is older than one heartbeat interval plus 5 s.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ffrtmp.isotime import now_iso

log = logging.getLogger("ffrtmp.agent")

DISK_LIMIT_PERCENT = 90.0
# what a check says before it has first been answered (no heartbeat yet, the media store not
# probed yet): a verdict made only of these is the agent starting, not worth a warning
STARTING = frozenset({"master not_registered", "media unknown"})
NOT_CONFIGURED = "not_configured"  # no media store: jobs use media roots and URLs only
MEDIA_OK = (NOT_CONFIGURED, "reachable")


@dataclass
class HeartbeatOutcome:
    status: str = "not_registered"  # reachable | unreachable | timeout | not_registered
    at: float = 0.0


class Readiness:
    def __init__(self, work_dir: str, ffmpeg: str = "ffmpeg",
                 media_roots: Sequence[str] = (),
                 media: Callable[[], str] = lambda: NOT_CONFIGURED,
                 disk_limit_percent: float = DISK_LIMIT_PERCENT) -> None:
        self.work_dir, self.ffmpeg = work_dir, ffmpeg
        self.disk_limit_percent = disk_limit_percent
        self._claiming: bool | None = None  # the verdict last logged; None: none yet
        self.media = media  # the media store's status, kept current by its own probe
        self.media_roots = tuple(media_roots)
        self._lock = threading.Lock()
        self._outcome = HeartbeatOutcome()
        self.heartbeat_interval_s = 5.0

    def record_heartbeat(self, status: str) -> None:
        with self._lock:
            self._outcome = HeartbeatOutcome(status, time.monotonic())

    def disk(self) -> tuple[bool, str, float]:
        """The fullest filesystem the node writes to: ``(ok, text, percent used)``."""
        usages = [(psutil.disk_usage(path), path) for path in self._written_filesystems()]
        usage, path = max(usages, key=lambda pair: pair[0].percent)
        ok = usage.percent <= self.disk_limit_percent
        text = (f"ok: {usage.percent:.1f}% used, {usage.free // 2**20} MB available" if ok
                else f"low: {path} {usage.percent:.1f}% used")
        return ok, text, usage.percent

    def _written_filesystems(self) -> list[str]:
        """The work dir (OSError if it is missing) and each existing media root, one path
        per filesystem."""
        paths: list[str] = []
        devices: set[int] = set()
        for path in (self.work_dir, *self.media_roots):
            try:
                device = Path(path).stat().st_dev
            except FileNotFoundError:
                if path == self.work_dir:
                    raise
                continue
            if device not in devices:
                devices.add(device)
                paths.append(path)
        return paths

    def master(self) -> str:
        with self._lock:
            outcome = self._outcome
        if outcome.status == "reachable" and (
                time.monotonic() - outcome.at > self.heartbeat_interval_s + 5):
            return "timeout"
        return outcome.status

    def _failing(self, *, with_master: bool) -> tuple[dict[str, str], list[str]]:
        """The checks, and each failing one as ``"<check> <value>"``."""
        ffmpeg = "available" if shutil.which(self.ffmpeg) else "not_found"
        try:
            disk_ok, disk_text, _ = self.disk()
        except OSError as exc:
            disk_ok, disk_text = False, f"error: {exc.strerror}"
        checks = {"ffmpeg": ffmpeg, "disk_space": disk_text, "master": self.master(),
                  "media": self.media()}
        failing = [f"ffmpeg {ffmpeg}"] if ffmpeg != "available" else []
        failing += [] if disk_ok else [f"disk_space {disk_text}"]
        if with_master and checks["master"] != "reachable":
            failing.append(f"master {checks['master']}")
        failing += [] if checks["media"] in MEDIA_OK else [f"media {checks['media']}"]
        return checks, failing

    def snapshot(self) -> tuple[bool, dict[str, Any]]:
        checks, failing = self._failing(with_master=True)
        ready = not failing
        self._note(ready, failing)
        return ready, {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "timestamp": now_iso("seconds"),
        }

    def verdict(self) -> dict[str, Any]:
        """What a heartbeat says of this node: ready but for the master, which hears it."""
        _, failing = self._failing(with_master=False)
        return {"ok": not failing, "reason": "; ".join(failing) or None}

    def _note(self, ready: bool, failing: list[str]) -> None:
        """Log a change of verdict once: a WARNING when the node stops claiming, INFO when it
        resumes. The start (checks not answered yet) is no change: nothing was claimed before it."""
        if not ready and set(failing) <= STARTING:
            return
        with self._lock:
            was, self._claiming = self._claiming, ready
        if was is ready or (ready and was is None):
            return
        if ready:
            log.info("ready again: claiming jobs")
        else:
            log.warning("not ready: no new jobs until it clears: %s", "; ".join(failing))
