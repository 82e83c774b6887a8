"""The parts of a split job the agent runs itself: the plan (a probe) and the sweep (deletes).

Neither is work a wrapper should follow: a probe and a DELETE are messages, idempotent and
tried again, so each runs as a background task (``ffrtmp.agent.transfers``), and after an
agent restart an unfinished one simply runs again. Like any job it is confirmed started
first, is listed in heartbeats while it runs, can be canceled, and ends by writing
``result.json`` as a wrapper would, so delivery, restarts and the history are shared.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ffrtmp.agent.jobs import PLAN_KEY, JobTable, LocalJob
from ffrtmp.agent.media_plane import MediaPlane, remote_reads
from ffrtmp.agent.split_plan import (
    PACKETS_ARGS,
    STREAMS_ARGS,
    PlanError,
    parse_packets,
    parse_streams,
    plan,
)
from ffrtmp.agent.transfers import Transfers
from ffrtmp.files import write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.jobspec import JobSpec, Plan, PlanStep, SweepStep
from ffrtmp.jobspec.steps import MAX_SEGMENTS
from ffrtmp.logs import fields
from ffrtmp.media.errors import Canceled, Refused
from ffrtmp.validation import FieldError
from ffrtmp.wrapper.result import (
    CANCELED,
    COMPLETED,
    INPUT_REFUSED,
    REASON_CHARS,
    Result,
    ResultExists,
)

log = logging.getLogger(__name__)

STEP = "step"  # the transfer key's phase for a step's task
PLAN_FAILED = "plan_failed"  # the source cannot be cut (no video, unreadable, ffprobe failed)
SWEEP_FAILED = "sweep_failed"
SPEC_REJECTED = "spec_rejected"
PROBE_TIMEOUT_S = 3600.0  # reading every packet of a long file takes a while, never this long
POLL_S = 0.2


@dataclass(frozen=True)
class Ending:
    """How a step ended: its reason, whether the platform kept its promises, and the plan."""

    reason: str
    success: bool = False
    platform_sla: bool = True
    canceled: bool = False
    plan: dict[str, Any] | None = None


class Steps:
    def __init__(self, jobs: JobTable, media: MediaPlane, *, ffprobe: str = "ffprobe") -> None:
        self.jobs, self.media, self.ffprobe = jobs, media, ffprobe
        self.tasks = Transfers(media.transfers.wake)

    def run(self, job: LocalJob, spec: JobSpec) -> None:
        """Start the step's task unless it runs already (a confirmed start, or a restart)."""
        self.tasks.start((*job.key, STEP), lambda cancel: self._task(job, spec, cancel))

    def poll(self, parse: Callable[[LocalJob], JobSpec | None]) -> None:
        """Each pass: forget tasks that ended, and run each unfinished step that has none.

        A task that ended without a result (it could not write one) is run again.
        """
        for job in self.jobs.running():
            if not job.runs_here or job.start_pending:  # unconfirmed: the loop asks first
                continue
            task = self.tasks.get((*job.key, STEP))
            if task is not None and task.done:
                self.tasks.forget((*job.key, STEP))
                task = None
            if task is not None or job.finished:
                continue
            spec = parse(job)
            if spec is None:
                self.jobs.reject(job, f"{SPEC_REJECTED}: it no longer passes this node's checks")
            else:
                self.run(job, spec)

    def cancel(self, job: LocalJob) -> bool:
        return self.tasks.cancel((*job.key, STEP))

    def forget(self, job: LocalJob) -> None:
        self.tasks.forget((*job.key, STEP))

    # --- the task ---

    def _task(self, job: LocalJob, spec: JobSpec, cancel: threading.Event) -> None:
        started, start_time = time.monotonic(), iso(utc_now())
        ids = fields(job=job.job_id, attempt=job.attempt)
        try:
            if isinstance(spec.step, PlanStep):
                ending = self._plan(job, spec, spec.step, cancel)
            elif isinstance(spec.step, SweepStep):
                ending = self._sweep(job, spec.step, cancel)
            else:
                ending = Ending(f"{PLAN_FAILED}: not a step the agent runs", platform_sla=False)
        except Canceled:
            ending = Ending(CANCELED, canceled=True)
        except Refused as exc:
            ending = Ending(f"{INPUT_REFUSED}: {exc}", platform_sla=False)
        except PlanError as exc:  # the source's fault
            ending = Ending(f"{PLAN_FAILED}: {exc}")
        except (OSError, ValueError) as exc:  # ffprobe missing, a full disk, no store: the node's
            ending = Ending(f"{_failed(spec)}: {exc}", platform_sla=False)
        log.info("%s step ended: %s", spec.step.kind if spec.step else "?", ending.reason,
                 extra=ids)
        self._write(job, ending, start_time, time.monotonic() - started)

    def _plan(self, job: LocalJob, spec: JobSpec, step: PlanStep,
              cancel: threading.Event) -> Ending:
        remote = remote_reads(spec)
        if remote and not job.files.fetched.exists():
            self.media.fetch(job, remote, cancel)
        path = self.media.place(job, spec).source.local_path
        if path is None:
            raise PlanError("the input is not a file")
        packets = parse_packets(self._probe([*PACKETS_ARGS, path], cancel))
        streams = parse_streams(self._probe([*STREAMS_ARGS, path], cancel))
        doc = plan(packets, streams, step.segment_s, MAX_SEGMENTS)
        try:
            checked = Plan.from_dict(doc).to_dict()
        except FieldError as exc:
            raise PlanError(f"{exc.field}: {exc.message}") from None
        return Ending(COMPLETED, success=True, plan=checked)

    def _sweep(self, job: LocalJob, step: SweepStep, cancel: threading.Event) -> Ending:
        ids = fields(job=job.job_id, attempt=job.attempt)
        try:
            self.media.remove_workspace(step.workspace, cancel, ids)
        except Refused as exc:
            return Ending(f"{SWEEP_FAILED}: {exc}", platform_sla=False)
        return Ending(COMPLETED, success=True)

    def _probe(self, args: list[str], cancel: threading.Event) -> str:
        """ffprobe's output; stopped at once when the step is canceled."""
        with subprocess.Popen([self.ffprobe, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while True:
                try:
                    out, err = child.communicate(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if cancel.is_set() or time.monotonic() > deadline:
                        child.kill()
                        child.communicate()
                        if cancel.is_set():
                            raise Canceled("ffprobe", args[-1]) from None
                        raise PlanError("ffprobe did not finish") from None
        if child.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise PlanError(f"ffprobe exited {child.returncode}: {last[0]}")
        return out.decode(errors="replace")

    def _write(self, job: LocalJob, ending: Ending, start_time: str, runtime_s: float) -> None:
        result = Result(job_id=job.job_id, attempt=job.attempt, pid=None, mode="run",
                        start_time=start_time, end_time=iso(utc_now()), runtime_s=runtime_s,
                        exit_code=0 if ending.success else None, signal=None,
                        platform_sla=ending.platform_sla, reason=ending.reason[:REASON_CHARS],
                        canceled=ending.canceled)
        extra = {} if ending.plan is None else {PLAN_KEY: ending.plan}
        with contextlib.suppress(FileExistsError, ResultExists):
            write_json_atomic(job.files.result_json, {**result.to_dict(), **extra},
                              exclusive=True)
            self.jobs.count(result)


def _failed(spec: JobSpec) -> str:
    return PLAN_FAILED if isinstance(spec.step, PlanStep) else SWEEP_FAILED
