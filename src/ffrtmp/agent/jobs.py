"""The agent's jobs on disk: one directory per attempt, one detached wrapper per job.

``<state_dir>/jobs/<job_id>.<attempt>/`` holds ``assignment.json`` (written by the agent
before anything runs), the wrapper's ``wrapper.json``, ``progress.txt``, ``output.log`` and
``result.json``, and ``delivered.json`` once the master has the result. Everything the agent
knows survives its own restart: at start it re-reads every directory, keeps following live
wrappers, re-attaches to workloads whose wrapper died, and delivers results not yet delivered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffrtmp.agent.ffmpeg import build_argv, probe_duration_s, read_progress
from ffrtmp.jobspec import JobSpec
from ffrtmp.logs import fields
from ffrtmp.wrapper import procinfo
from ffrtmp.wrapper.common import iso, read_json, utc_now, write_json_atomic
from ffrtmp.wrapper.result import Result, lost_track

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 16384
# A wrapper writes wrapper.json within milliseconds; past this, a missing one means it died.
WRAPPER_START_GRACE_S = 30.0


@dataclass
class LocalJob:
    job_id: str
    attempt: int
    attempt_token: str
    spec: dict[str, Any]
    dir: Path
    expected_duration_s: float | None = None
    launched_at: float = 0.0
    child: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, int]:
        return self.job_id, self.attempt

    def file(self, name: str) -> Path:
        return self.dir / name

    @property
    def finished(self) -> bool:
        return self.file("result.json").exists()

    @property
    def delivered(self) -> bool:
        return self.file("delivered.json").exists()

    def wrapper_state(self) -> dict[str, Any] | None:
        try:
            return read_json(self.file("wrapper.json"))
        except (OSError, ValueError):
            return None


def expected_duration_s(spec: JobSpec) -> float | None:
    """The output's length when known, for progress percentages (ffprobe for file inputs)."""
    known = spec.expected_duration_s()
    if known is None and spec.input_kind == "file":
        known = probe_duration_s(spec.input.removeprefix("file://"))
    return known


class JobTable:
    def __init__(self, state_dir: str, *, log_dir: str, log_level: str, cancel_grace_s: float,
                 media_roots: tuple[str, ...]) -> None:
        self.root = Path(state_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir, self.log_dir, self.log_level = state_dir, log_dir, log_level
        self.cancel_grace_s = cancel_grace_s
        self.media_roots = media_roots
        self.jobs: dict[tuple[str, int], LocalJob] = {}
        self.changed = threading.Event()  # set when a wrapper we started exits

    # --- views ---

    def running(self) -> list[LocalJob]:
        return [j for j in self.jobs.values() if not j.finished]

    def undelivered(self) -> list[LocalJob]:
        return [j for j in self.jobs.values() if j.finished and not j.delivered]

    def __iter__(self) -> Iterator[LocalJob]:
        return iter(list(self.jobs.values()))

    # --- start ---

    def prepare(self, assignment: dict[str, Any], spec: JobSpec | None) -> LocalJob:
        """Record the assignment on disk before anything runs, so a restart knows about it."""
        job = LocalJob(assignment["job_id"], assignment["attempt"], assignment["attempt_token"],
                       assignment["spec"], self.root / f"{assignment['job_id']}.{assignment['attempt']}")
        job.dir.mkdir(parents=True, exist_ok=True)
        job.expected_duration_s = expected_duration_s(spec) if spec else None
        write_json_atomic(job.file("assignment.json"), {
            "job_id": job.job_id, "attempt": job.attempt, "attempt_token": job.attempt_token,
            "spec": job.spec, "expected_duration_s": job.expected_duration_s,
            "claimed_at": iso(utc_now())})
        self.jobs[job.key] = job
        return job

    def launch(self, job: LocalJob, spec: JobSpec) -> None:
        """Start ``ffrtmp wrapper run`` in its own session; it outlives this agent."""
        for output in spec.outputs:
            if output.kind in ("file", "hls"):
                Path(output.url.removeprefix("file://")).parent.mkdir(parents=True, exist_ok=True)
        argv = build_argv(spec, progress_path=str(job.file("progress.txt")))
        command = [sys.executable, "-m", "ffrtmp", "wrapper", "run", "--job-id", job.job_id,
                   "--attempt", str(job.attempt), "--job-dir", str(job.dir),
                   "--state-dir", self.state_dir, "--log-dir", self.log_dir,
                   "--cancel-grace", str(self.cancel_grace_s)]
        if spec.intent:
            command += ["--intent", spec.intent]
        if spec.limits.cpu_max:
            command += ["--cpu-max", spec.limits.cpu_max]
        if spec.limits.memory_max and spec.limits.memory_max != "max":
            command += ["--memory-max", spec.limits.memory_max]
        job.child = self._spawn([*command, "--", *argv], job)
        job.launched_at = time.monotonic()
        log.info("launched wrapper pid=%d", job.child.pid, extra=fields(job=job.job_id, attempt=job.attempt))

    def _spawn(self, command: list[str], job: LocalJob) -> subprocess.Popen[bytes]:
        with job.file("wrapper.out").open("ab") as out:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     close_fds=True, env={**os.environ, "FFRTMP_LOG_LEVEL": self.log_level})
        # wake the loop the moment the wrapper exits, so the result goes out and the slot refills
        threading.Thread(target=lambda: (child.wait(), self.changed.set()), daemon=True,
                         name=f"wrapper-{job.job_id}").start()
        return child

    def reject(self, job: LocalJob, reason: str) -> None:
        """Record a job this node refuses to run (its spec fails the local checks)."""
        now = iso(utc_now())
        Result(job_id=job.job_id, attempt=job.attempt, pid=None, mode="run", start_time=now,
               end_time=now, runtime_s=0.0, exit_code=None, signal=None, platform_sla=True,
               reason=reason).write(job.dir)

    def forget(self, job: LocalJob) -> None:
        """Drop an assignment that never ran (the master refused its start)."""
        self.jobs.pop(job.key, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    # --- follow ---

    def adopt(self) -> None:
        """At start: load every job directory this node left behind."""
        for directory in sorted(self.root.iterdir()):
            try:
                data = read_json(directory / "assignment.json")
            except (OSError, ValueError):
                continue
            job = LocalJob(data["job_id"], data["attempt"], data["attempt_token"], data["spec"],
                           directory, data.get("expected_duration_s"))
            self.jobs[job.key] = job
            if not job.finished:
                log.info("re-adopting a running job", extra=fields(job=job.job_id, attempt=job.attempt))

    def poll(self) -> None:
        """Reap our wrappers; re-attach to workloads whose wrapper is gone; record the lost."""
        for job in self.running():
            if job.child is not None and job.child.poll() is None:
                continue
            state = job.wrapper_state()
            if job.finished:
                continue
            if state is None:
                if job.child is None or time.monotonic() - job.launched_at > WRAPPER_START_GRACE_S:
                    self._record_lost(job, None)
                continue
            if procinfo.alive(state["wrapper_pid"], state.get("wrapper_start_ticks")):
                continue  # a wrapper from an earlier agent is still following its workload
            if job.finished:  # it wrote the result and exited between the two checks
                continue
            if procinfo.alive(state["pid"], state.get("pid_start_ticks")):
                self._attach(job, state)
            else:
                self._record_lost(job, state)

    def _attach(self, job: LocalJob, state: dict[str, Any]) -> None:
        command = [sys.executable, "-m", "ffrtmp", "wrapper", "attach", "--pid", str(state["pid"]),
                   "--job-id", job.job_id, "--attempt", str(job.attempt), "--job-dir", str(job.dir),
                   "--state-dir", self.state_dir, "--log-dir", self.log_dir,
                   "--cancel-grace", str(self.cancel_grace_s)]
        if state.get("pid_start_ticks") is not None:
            command += ["--start-ticks", str(state["pid_start_ticks"])]
        if job.spec.get("intent"):
            command += ["--intent", job.spec["intent"]]
        job.child = self._spawn(command, job)
        job.launched_at = time.monotonic()
        log.warning("wrapper gone, workload pid=%s alive: attached", state["pid"],
                    extra=fields(job=job.job_id, attempt=job.attempt))

    def _record_lost(self, job: LocalJob, state: dict[str, Any] | None) -> None:
        """Neither wrapper nor workload can be followed any more: a platform failure."""
        now = utc_now()
        started = (state or {}).get("started_at") or iso(now)
        result = lost_track(job_id=job.job_id, attempt=job.attempt,
                            pid=(state or {}).get("pid"), start_time=started, end_time=iso(now),
                            runtime_s=0.0, intent=job.spec.get("intent"),
                            mode=(state or {}).get("mode", "run"))
        with contextlib.suppress(FileExistsError):
            result.write(job.dir)
            from ffrtmp.wrapper import counters

            counters.record(Path(self.state_dir), result)
        log.error("lost track of the workload", extra=fields(job=job.job_id, attempt=job.attempt))

    # --- cancel, progress, results ---

    def cancel(self, job_id: str, attempt: int) -> bool:
        """Ask the wrapper to cancel (SIGUSR1): it alone signals the workload."""
        job = self.jobs.get((job_id, attempt))
        state = job.wrapper_state() if job else None
        if job is None or state is None or job.finished:
            return False
        if not procinfo.alive(state["wrapper_pid"], state.get("wrapper_start_ticks")):
            return False
        os.kill(state["wrapper_pid"], signal.SIGUSR1)
        log.info("cancel requested by the master: sent to wrapper pid=%d", state["wrapper_pid"],
                 extra=fields(job=job_id, attempt=attempt))
        return True

    def progress(self, job: LocalJob) -> dict[str, Any] | None:
        p = read_progress(str(job.file("progress.txt")), job.expected_duration_s)
        if p is None:
            return None
        return {k: v for k, v in (("percent", p.percent), ("out_time_s", p.out_time_s),
                                  ("fps", p.fps), ("speed", p.speed), ("frame", p.frame))
                if v is not None}

    def result_body(self, job: LocalJob) -> dict[str, Any]:
        result = Result.read(job.dir)
        if result.canceled:
            outcome = "canceled"
        elif result.success:
            outcome = "succeeded"
        else:
            outcome = "failed"
        return {"attempt_token": job.attempt_token, "outcome": outcome,
                "exit_code": result.exit_code if result.exit_code is None or 0 <= result.exit_code < 256
                else 255, "signal": result.signal, "platform_sla": result.platform_sla,
                "reason": result.reason, "runtime_s": round(result.runtime_s, 3),
                "started_at": result.start_time, "ended_at": result.end_time,
                "log_tail": self._log_tail(job)}

    @staticmethod
    def _log_tail(job: LocalJob) -> str:
        try:
            with job.file("output.log").open("rb") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def mark_delivered(self, job: LocalJob, reply: dict[str, Any]) -> None:
        write_json_atomic(job.file("delivered.json"), {"at": iso(utc_now()), "reply": reply})

    def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Remove delivered job directories older than a week; the counters keep the totals."""
        cutoff = time.time() - older_than_s
        removed = 0
        for job in list(self.jobs.values()):
            marker = job.file("delivered.json")
            if marker.exists() and marker.stat().st_mtime < cutoff:
                shutil.rmtree(job.dir, ignore_errors=True)
                self.jobs.pop(job.key, None)
                removed += 1
        return removed
