"""The agent's jobs on disk: one directory per attempt, one detached wrapper per job.

Each attempt has a job directory (``ffrtmp.layout``): the agent writes its assignment before
anything runs, the wrapper its state and result, the agent the delivery. Everything the agent
knows survives its own restart: at start it re-reads every directory, keeps following live
wrappers, re-attaches to workloads whose wrapper died, and delivers results not yet delivered.

A directory whose files cannot be understood (torn, not JSON, missing keys) is moved to
the state dir's quarantine for the operator, never trusted and never fatal: when its job,
attempt and token can still be read, a fresh directory records the attempt as a platform
failure (``job_dir_unreadable: <file>: <problem>``) and the ordinary spool delivers it.

Delivered jobs leave the table at once (the master and the counters have them) and their
directories form a bounded history, pruned oldest first beyond ``FFRTMP_JOB_HISTORY``
directories or ``FFRTMP_JOB_HISTORY_HOURS``: the agent's work per pass depends on its live
jobs only, and the state dir does not fill up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffrtmp import jobspec
from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.ffmpeg import probe_duration_s
from ffrtmp.agent.outputs import output_dirs, settle_outputs
from ffrtmp.agent.split_argv import write_concat_lists
from ffrtmp.agent.standby import StandbyPool
from ffrtmp.contract import Outcome, Step
from ffrtmp.files import PRIVATE, read_json, tail, write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.jobspec import JobSpec, StitchStep
from ffrtmp.layout import JobDir, StateDir
from ffrtmp.logs import fields
from ffrtmp.progress import read_progress
from ffrtmp.urls import redact_text
from ffrtmp.validation import JOB_ID
from ffrtmp.wrapper import procinfo
from ffrtmp.wrapper.cmdline import WrapperCall
from ffrtmp.wrapper.result import (
    OUTPUT_NOT_PUBLISHED,
    REASON_CHARS,
    Result,
    lost_track,
    platform_failure,
)

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 16384
# A wrapper writes wrapper.json within milliseconds; past this, a missing one means it died.
WRAPPER_START_GRACE_S = 30.0
UNREADABLE = "job_dir_unreadable"
PRUNE_BATCH = 500  # directories removed per pass at most, so that a pass stays short
RESULT_POLL_S = 0.01  # how often a running wrapper's result is looked for (one stat)

# What the agent relies on in each file, by key and type.
IDS: Mapping[str, type | tuple[type, ...]] = {"job_id": str, "attempt": int, "attempt_token": str}
ASSIGNMENT_KEYS = {**IDS, "spec": dict}
WRAPPER_KEYS: Mapping[str, type | tuple[type, ...]] = {"wrapper_pid": int, "pid": int}
# The parts of a split job the agent runs itself (a probe, deletes): no wrapper follows them.
RUN_BY_AGENT = frozenset({Step.PLAN.value, Step.SWEEP.value})
PLAN_KEY = "plan"  # result.json of a plan step: the plan, for the result's body

RESULT_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "job_id": str, "attempt": int, "mode": str, "start_time": str, "end_time": str,
    "runtime_s": (int, float), "platform_sla": bool, "reason": str}


class Unreadable(Exception):
    """A file of a job directory that cannot be understood; the message names the file."""


def read_object(path: Path, keys: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object in ``path`` with ``keys`` of their types, or Unreadable saying why not."""
    try:
        data = read_json(path)
    except UnicodeDecodeError:
        raise Unreadable(f"{path.name}: not UTF-8") from None
    except ValueError:
        raise Unreadable(f"{path.name}: not valid JSON") from None
    except OSError as exc:
        raise Unreadable(f"{path.name}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{path.name}: not a JSON object")
    wrong = [k for k, kind in keys.items()
             if not isinstance(data.get(k), kind) or (kind is int and isinstance(data[k], bool))]
    if wrong:
        raise Unreadable(f"{path.name}: missing or malformed {', '.join(wrong)}")
    return data


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

    @property
    def files(self) -> JobDir:
        return JobDir(self.dir)

    @property
    def finished(self) -> bool:
        return self.files.result_json.exists()

    @property
    def delivered(self) -> bool:
        return self.files.delivered.exists()

    @property
    def runs_here(self) -> bool:
        """A plan or a sweep: run by the agent (``ffrtmp.agent.steps``), not by a wrapper."""
        step = self.spec.get("step")
        return isinstance(step, dict) and step.get("kind") in RUN_BY_AGENT

    @property
    def awaiting_launch(self) -> bool:
        """Confirmed, its input still being staged: no wrapper yet, and none is missing."""
        files = self.files
        return (files.fetching.exists() and not files.launched.exists()
                and not files.result_json.exists())

    @property
    def start_pending(self) -> bool:
        """Claimed, its start sent and not answered (``JobTable.await_start``): nothing of it
        runs until the master confirms that start, and heartbeats list it meanwhile."""
        files = self.files
        return (files.start_pending.exists() and not files.launched.exists()
                and not files.fetching.exists() and not files.result_json.exists())

    @property
    def never_begun(self) -> bool:
        """A wrapper job with its assignment only: an agent stopped between the claim and a
        confirmed start (``launched.json`` and ``fetching.json`` precede any work)."""
        files = self.files
        return not self.runs_here and not any(
            f.exists() for f in (files.launched, files.fetching, files.wrapper_json,
                                 files.result_json))

    def wrapper_state(self) -> dict[str, Any] | None:
        """None until the wrapper has written wrapper.json; Unreadable when it is corrupt."""
        path = self.files.wrapper_json
        return read_object(path, WRAPPER_KEYS) if path.exists() else None


def _claim_cut_short(directory: Path) -> bool:
    """An attempt's directory with nothing in it: made by ``prepare``, which died before
    ``assignment.json`` landed. Nothing ran, and nothing here can say which job it was."""
    job_id, _, attempt = directory.name.rpartition(".")
    return (attempt.isdigit() and JOB_ID.pattern.fullmatch(job_id) is not None
            and directory.is_dir() and not any(directory.iterdir()))


def _since_launch_s(job: LocalJob) -> float:
    """How long ago the wrapper was started; read from ``launched.json`` after a restart, so a
    wrapper still starting when the agent died is given the same grace as one just spawned."""
    if job.child is not None:
        return time.monotonic() - job.launched_at
    try:
        return time.time() - job.files.launched.stat().st_mtime
    except OSError:
        return float("inf")


def wait_for_result(child: subprocess.Popen[bytes], result: Path,
                    timeout_s: float | None = None) -> bool:
    """Return when the wrapper's ``result`` is recorded (True), or it exited without one,
    or ``timeout_s`` passed (False); one stat per ``RESULT_POLL_S``, never a busy wait.

    The result, not the wrapper's exit, frees a slot: after writing it the wrapper only
    counts, logs and exits, and its interpreter's exit took 75-125 ms of a loaded machine's
    slot time. The benchmarks wait the same way, so that they measure what the agent pays.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        pidfd: int | None = os.pidfd_open(child.pid)
    except (OSError, AttributeError):  # reaped already, or no pidfd here: wait by polling
        pidfd = None
    try:
        while not _exited(child, pidfd):
            if result.exists():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
        return result.exists()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _exited(child: subprocess.Popen[bytes], pidfd: int | None) -> bool:
    """Whether the wrapper has exited, waiting for it up to ``RESULT_POLL_S``: on its pidfd
    (one wake-up per poll), else on ``Popen.wait``."""
    if pidfd is not None:
        return bool(select.select([pidfd], [], [], RESULT_POLL_S)[0])
    try:
        child.wait(RESULT_POLL_S)
    except subprocess.TimeoutExpired:
        return False
    return True


def known_duration_s(spec: JobSpec) -> float | None:
    """The output's length when the spec says it, for progress percentages; no probe."""
    if spec.step is not None and spec.step.kind in RUN_BY_AGENT:
        return None  # a probe or deletes: no FFmpeg progress to weigh
    return spec.expected_duration_s()


def expected_duration_s(spec: JobSpec) -> float | None:
    """The output's length when known, for progress percentages (ffprobe for file inputs)."""
    if spec.step is not None and spec.step.kind in RUN_BY_AGENT:
        return None  # a probe or deletes: no FFmpeg progress to weigh
    known = spec.expected_duration_s()
    if known is None and spec.source.local_path is not None:
        known = probe_duration_s(spec.source.local_path)
    return known


class JobTable:
    def __init__(self, state_dir: str, *, log_dir: str, log_level: str, cancel_grace_s: float,
                 media_roots: tuple[str, ...], keep_delivered: int, keep_delivered_s: float,
                 node: Callable[[], str | None] = lambda: None,
                 place: Callable[[LocalJob, JobSpec], JobSpec] = lambda job, spec: spec,
                 changed: threading.Event | None = None,
                 scratch: Callable[[LocalJob], Path] = lambda job: job.dir,
                 standby: int = 1) -> None:
        self.state = StateDir(Path(state_dir))
        self.root = self.state.jobs
        self.root.mkdir(parents=True, exist_ok=True)
        self.node = node  # this node's id once registered, for log lines
        self.state_dir, self.log_dir, self.log_level = state_dir, log_dir, log_level
        self.cancel_grace_s = cancel_grace_s
        self.media_roots = media_roots
        self.jobs: dict[tuple[str, int], LocalJob] = {}  # live: not yet delivered
        self.keep_delivered, self.keep_delivered_s = keep_delivered, keep_delivered_s
        self.history: deque[tuple[float, Path]] = deque()  # delivered dirs, oldest first
        self.changed = changed or threading.Event()  # set when a wrapper we started exits
        self.place = place  # the spec as FFmpeg runs it here: remote media in the work dir
        self.scratch = scratch  # the attempt's media directory (a stitch's concat lists go there)
        self.standby = StandbyPool(standby)  # started wrappers waiting for a launch (``_spawn``)

    # --- views ---

    def running(self) -> list[LocalJob]:
        return [j for j in self.jobs.values() if not j.finished]

    def working(self) -> list[LocalJob]:
        """Running jobs with a workload (not those still staging their input, nor the plans
        and sweeps the agent runs itself: those are messages, run again by the next start)."""
        return [j for j in self.running()
                if not j.awaiting_launch and not j.runs_here and not j.start_pending]

    def pending(self) -> list[LocalJob]:
        """Jobs whose start the master has not answered yet: none of them runs."""
        return [j for j in self.running() if j.start_pending]

    def undelivered(self) -> list[LocalJob]:
        return [j for j in self.jobs.values() if j.finished and not j.delivered]

    def __iter__(self) -> Iterator[LocalJob]:
        return iter(list(self.jobs.values()))

    # --- start ---

    def prepare(self, assignment: dict[str, Any], spec: JobSpec | None) -> LocalJob:
        """Record the assignment on disk before anything runs, so a restart knows about it."""
        job = LocalJob(assignment["job_id"], assignment["attempt"], assignment["attempt_token"],
                       assignment["spec"], self.state.job(assignment["job_id"], assignment["attempt"]).path)
        job.dir.mkdir(parents=True, exist_ok=True)
        # what the spec says; a file input's length is probed once the wrapper is on its way
        job.expected_duration_s = known_duration_s(spec) if spec else None
        write_json_atomic(job.files.assignment, {
            "job_id": job.job_id, "attempt": job.attempt, "attempt_token": job.attempt_token,
            "spec": job.spec, "expected_duration_s": job.expected_duration_s,
            "claimed_at": iso(utc_now())}, mode=PRIVATE)  # the attempt token is a secret
        self.jobs[job.key] = job
        return job

    def launch(self, job: LocalJob, spec: JobSpec) -> None:
        """Start ``ffrtmp wrapper run`` in its own session; it outlives this agent.

        ``launched.json`` is written first: a job found without a wrapper after a restart was
        launched and lost, never started a second time.
        """
        spec = self.place(job, spec)
        write_json_atomic(job.files.launched, {"at": iso(utc_now())})
        for directory in output_dirs(spec):
            Path(directory).mkdir(parents=True, exist_ok=True)
        argv = build_argv(spec, progress_path=str(job.files.progress), stage=job.dir.name,
                          work=self._concat_lists(job, spec))
        memory = spec.limits.memory_max
        job.child = self._spawn(job, mode="run", intent=spec.intent, cpu_max=spec.limits.cpu_max,
                                memory_max=int(memory) if memory and memory != "max" else None,
                                command=tuple(argv))
        job.launched_at = time.monotonic()
        log.info("launched wrapper pid=%d", job.child.pid,
                 extra=fields(job=job.job_id, attempt=job.attempt, node=self.node()))
        self.learn_duration(job, spec)

    @staticmethod
    def learn_duration(job: LocalJob, spec: JobSpec) -> None:
        """Probe the input's length (the staged copy of a remote one) in the background when
        the spec does not say it: only progress percentages need it, and an ffprobe before
        the launch cost the slot 50-200 ms per job."""
        if job.expected_duration_s is not None or job.runs_here or spec.source.local_path is None:
            return

        def probe() -> None:
            with contextlib.suppress(OSError):  # no ffprobe: no percentages, as before
                job.expected_duration_s = expected_duration_s(spec)

        threading.Thread(target=probe, daemon=True, name=f"duration-{job.job_id}").start()

    def _concat_lists(self, job: LocalJob, spec: JobSpec) -> Path | None:
        """A stitch's concat lists, written before launch into the attempt's media directory."""
        if not isinstance(spec.step, StitchStep):
            return None
        work = self.scratch(job)
        work.mkdir(parents=True, exist_ok=True)
        write_concat_lists(spec, work)
        return work

    def settled(self, job: LocalJob, result: Result) -> Result:
        """Publish the staged outputs of a succeeded job, or remove them; before delivery.

        result.json is the decision and the agent acts on it at every delivery attempt, so
        a crash between the workload's exit and the rename, of the wrapper or of the agent,
        only delays it. A success whose outputs cannot be published is not a success.
        """
        spec = self.local_spec(job)
        if spec is None:
            return result  # never ran: nothing was staged
        ok = result.success and not result.canceled
        ids = fields(job=job.job_id, attempt=job.attempt, node=self.node())
        try:
            for final in settle_outputs(spec, job.dir.name, succeeded=ok):
                log.info("published %s", final, extra=ids)
        except OSError as exc:
            log.error("cannot publish the outputs: %s", exc, extra=ids)
            return platform_failure(result, f"{OUTPUT_NOT_PUBLISHED}: {exc}")
        return result

    def local_spec(self, job: LocalJob) -> JobSpec | None:
        """The job's spec as it ran here, or None when it never could (it failed local checks)."""
        spec = self.typed_spec(job)
        return None if spec is None else self.place(job, spec)

    def typed_spec(self, job: LocalJob) -> JobSpec | None:
        """The job's spec as the master gave it, typed; None when it fails the local checks."""
        try:
            return jobspec.parse(job.spec, self.media_roots, check_filesystem=False)
        except jobspec.SpecError:
            return None

    def _spawn(self, job: LocalJob, **call: Any) -> subprocess.Popen[bytes]:
        """Start a wrapper for ``job``; ``call`` holds the WrapperCall fields of this mode.

        A standby wrapper (``agent.standby``), its start-up already paid, takes the call when
        one is ready; else one starts cold. Either way the pool is topped up after, so the
        next launch finds one: its start-up overlaps this job, not the slot's idle time.
        """
        wrapper = WrapperCall(job_id=job.job_id, attempt=job.attempt, job_dir=str(job.dir),
                              state_dir=self.state_dir, log_dir=self.log_dir,
                              log_level=self.log_level, cancel_grace_s=self.cancel_grace_s,
                              **{"node": self.node(), **call})
        child = self.standby.hand_off(wrapper, job.files.wrapper_out)
        if child is None:
            with job.files.wrapper_out.open("ab") as out:
                child = subprocess.Popen(wrapper.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         close_fds=True)
        self.standby.fill()
        threading.Thread(target=self._wake_when_done, args=(child, job.files.result_json),
                         daemon=True, name=f"wrapper-{job.job_id}").start()
        return child

    def _wake_when_done(self, child: subprocess.Popen[bytes], result: Path) -> None:
        """Wake the loop the moment the workload's result is recorded, so the slot refills and
        the result goes out; and again when the wrapper exits (before a result, it died)."""
        if wait_for_result(child, result):
            self.changed.set()
        child.wait()
        self.changed.set()

    def reject(self, job: LocalJob, reason: str, *, platform_sla: bool = True,
               canceled: bool = False) -> None:
        """Record a job that never ran here (its spec fails the local checks, or its directory
        was unreadable); the spool delivers it like any result."""
        now = iso(utc_now())
        result = Result(job_id=job.job_id, attempt=job.attempt, pid=None, mode="run",
                        start_time=now, end_time=now, runtime_s=0.0, exit_code=None, signal=None,
                        platform_sla=platform_sla, reason=reason[:REASON_CHARS], canceled=canceled)
        result.write(job.dir)
        if not platform_sla:
            self.count(result)

    def count(self, result: Result) -> None:
        """Add a result the agent wrote itself to the counters every wrapper adds to."""
        from ffrtmp.wrapper import counters  # only when needed: it is slow to import

        counters.record(self.state.path, result)

    @staticmethod
    def await_start(job: LocalJob) -> None:
        """Keep an assignment whose start went unanswered: the master may have committed it
        (the reply was what got lost), so it stays listed in heartbeats, unlaunched, until the
        master confirms or refuses that start. On disk, so an agent restart keeps it so too."""
        if not job.files.start_pending.exists():
            write_json_atomic(job.files.start_pending, {"at": iso(utc_now())})

    @staticmethod
    def start_confirmed(job: LocalJob) -> None:
        """The master confirmed the start: the job may begin. The marker goes before any work;
        the next fsynced file in this directory (``launched.json``, ``fetching.json``) makes
        its removal durable, and should it come back all the same, the start is only asked
        again (the master answers it as the first time)."""
        job.files.start_pending.unlink(missing_ok=True)

    def forget(self, job: LocalJob) -> None:
        """Drop an assignment that never ran (the master refused its start)."""
        self.jobs.pop(job.key, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    # --- follow ---

    def adopt(self) -> None:
        """At start: load every job directory this node left behind."""
        delivered: list[tuple[float, Path]] = []
        for directory in sorted(self.root.iterdir()):
            try:
                delivered.append((JobDir(directory).delivered.stat().st_mtime, directory))
                continue
            except OSError:
                pass
            if _claim_cut_short(directory):
                directory.rmdir()
                log.info("removed the empty job directory %s: the agent stopped before it recorded"
                         " the claim (the lease returns the job to the queue)", directory.name)
                continue
            try:
                data = read_object(JobDir(directory).assignment, ASSIGNMENT_KEYS)
            except Unreadable as exc:
                self.quarantine(directory, exc)
                continue
            duration = data.get("expected_duration_s")  # only for percentages: dropped if odd
            job = LocalJob(data["job_id"], data["attempt"], data["attempt_token"], data["spec"],
                           directory, duration if isinstance(duration, int | float) else None)
            self.jobs[job.key] = job
            if not job.finished:
                self._readopt(job)
        self.history.extend(sorted(delivered))

    def _readopt(self, job: LocalJob) -> None:
        """An unfinished job left by the last agent: one never begun awaits its start's answer
        (it is asked again, never launched unconfirmed); the others are followed."""
        ids = fields(job=job.job_id, attempt=job.attempt, node=self.node())
        if job.start_pending or job.never_begun:
            self.await_start(job)
            log.info("re-adopting a job awaiting its start confirmation (nothing launched)",
                     extra=ids)
            return
        log.info("re-adopting a running job", extra=ids)
        if (spec := self.local_spec(job)) is not None:
            self.learn_duration(job, spec)

    def quarantine(self, directory: Path, problem: Unreadable) -> None:
        """Move an unreadable job directory aside; report its attempt failed when it is known."""
        for key in [k for k, j in self.jobs.items() if j.dir == directory]:
            del self.jobs[key]
        try:
            ids: dict[str, Any] | None = read_object(JobDir(directory).assignment, IDS)
        except Unreadable:
            ids = None
        extra = fields(job=ids and ids["job_id"], attempt=ids and ids["attempt"], node=self.node())
        aside = self.state.quarantine
        target = aside / directory.name
        if target.exists():
            target = aside / f"{directory.name}.{utc_now():%Y%m%dT%H%M%S.%f}"
        try:
            aside.mkdir(exist_ok=True)
            directory.rename(target)
        except OSError as exc:
            log.error("job directory %s unreadable (%s) and cannot be moved aside: %s; ignored "
                      "until the next start", directory.name, problem, exc, extra=extra)
            return
        unreported = "" if ids else "; its attempt cannot be reported (no job id, attempt, token)"
        log.error("job directory %s quarantined to %s: %s%s", directory.name, target, problem,
                  unreported, extra=extra)
        if ids:
            self.reject(self.prepare({**ids, "spec": {}}, None), f"{UNREADABLE}: {problem}",
                        platform_sla=False)

    def poll(self) -> None:
        """Reap our wrappers; re-attach to workloads whose wrapper is gone; record the lost."""
        for job in self.running():
            try:
                self._follow(job)
            except Unreadable as exc:
                self.quarantine(job.dir, exc)

    def _follow(self, job: LocalJob) -> None:
        if job.runs_here:
            return  # no wrapper: the agent's own task writes the result (``agent.steps``)
        if job.start_pending:
            return  # nothing launched: the loop confirms its start first
        if job.awaiting_launch or (job.child is not None and job.child.poll() is None):
            return
        state = job.wrapper_state()
        if job.finished:
            return
        if state is None:
            if _since_launch_s(job) > WRAPPER_START_GRACE_S:
                self._record_lost(job, None)
            return
        if procinfo.alive(state["wrapper_pid"], state.get("wrapper_start_ticks")):
            return  # a wrapper from an earlier agent is still following its workload
        if job.files.result_json.exists():  # it wrote the result and exited between the checks
            return
        if procinfo.alive(state["pid"], state.get("pid_start_ticks")):
            self._attach(job, state)
        else:
            self._record_lost(job, state)

    def _attach(self, job: LocalJob, state: dict[str, Any]) -> None:
        job.child = self._spawn(job, mode="attach", pid=state["pid"],
                                start_ticks=state.get("pid_start_ticks"),
                                intent=job.spec.get("intent"), node=state.get("node") or self.node())
        job.launched_at = time.monotonic()
        log.warning("wrapper gone, workload pid=%s alive: attached", state["pid"],
                    extra=fields(job=job.job_id, attempt=job.attempt, node=self.node()))

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
            self.count(result)
        log.error("lost track of the workload",
                  extra=fields(job=job.job_id, attempt=job.attempt, node=self.node()))

    # --- cancel, progress, results ---

    def cancel(self, job_id: str, attempt: int) -> bool:
        """Ask the wrapper to cancel (SIGUSR1): it alone signals the workload."""
        job = self.jobs.get((job_id, attempt))
        try:
            state = job.wrapper_state() if job else None
        except Unreadable:
            return False  # the next poll quarantines it
        if job is None or state is None or job.finished:
            return False
        if not procinfo.alive(state["wrapper_pid"], state.get("wrapper_start_ticks")):
            return False
        os.kill(state["wrapper_pid"], signal.SIGUSR1)
        log.info("cancel requested by the master: sent to wrapper pid=%d", state["wrapper_pid"],
                 extra=fields(job=job_id, attempt=attempt, node=self.node()))
        return True

    def progress(self, job: LocalJob) -> dict[str, Any] | None:
        p = read_progress(str(job.files.progress), job.expected_duration_s)
        if p is None:
            return None
        return {k: v for k, v in (("percent", p.percent), ("out_time_s", p.out_time_s),
                                  ("fps", p.fps), ("speed", p.speed), ("frame", p.frame),
                                  ("eta_s", p.eta_s))
                if v is not None}

    def final_result(self, job: LocalJob) -> Result:
        """The wrapper's result with the outputs settled; Unreadable when it is not a result."""
        data = read_object(job.files.result_json, RESULT_KEYS)
        try:
            return self.settled(job, Result.from_dict(data))
        except (TypeError, ValueError, AttributeError) as exc:
            raise Unreadable(f"result.json: not a result ({type(exc).__name__})") from None

    def body(self, job: LocalJob, result: Result,
             outputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The result call's body: the outcome, and the outputs as they were delivered."""
        if result.canceled:
            outcome = Outcome.CANCELED
        elif result.success:
            outcome = Outcome.SUCCEEDED
        else:
            outcome = Outcome.FAILED
        return {"attempt_token": job.attempt_token, "outcome": outcome.value,
                "exit_code": result.exit_code if result.exit_code is None or 0 <= result.exit_code < 256
                else 255, "signal": result.signal, "platform_sla": result.platform_sla,
                "reason": result.reason, "runtime_s": round(result.runtime_s, 3),
                "started_at": result.start_time, "ended_at": result.end_time,
                "log_tail": self._log_tail(job), "outputs": outputs, **self._report(job, result)}

    @staticmethod
    def _report(job: LocalJob, result: Result) -> dict[str, Any]:
        """What a succeeded plan step adds to its result: the plan it wrote into result.json."""
        if not job.runs_here or not result.success or result.canceled:
            return {}
        try:
            found = read_json(job.files.result_json).get(PLAN_KEY)
        except (OSError, ValueError, AttributeError):
            return {}
        return {PLAN_KEY: found} if isinstance(found, dict) else {}

    @staticmethod
    def _log_tail(job: LocalJob) -> str:
        """FFmpeg's last lines, with any URL it printed redacted (a signature, a password)."""
        return redact_text(tail(job.files.output_log, LOG_TAIL_BYTES) or "")

    def mark_delivered(self, job: LocalJob, reply: dict[str, Any]) -> None:
        """The master has the result: the job leaves the table and joins the history."""
        write_json_atomic(job.files.delivered, {"at": iso(utc_now()), "reply": reply})
        self.jobs.pop(job.key, None)
        self.history.append((time.time(), job.dir))

    def prune(self) -> int:
        """Remove the oldest delivered directories beyond the count or age kept; a directory
        without delivered.json (running, or its result not yet acknowledged) is never removed."""
        cutoff = time.time() - self.keep_delivered_s
        removed = 0
        while self.history and removed < PRUNE_BATCH and (
                len(self.history) > self.keep_delivered or self.history[0][0] < cutoff):
            _, directory = self.history.popleft()
            if JobDir(directory).delivered.exists():
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
        if removed:
            log.info("pruned %d delivered job directories; %d kept", removed, len(self.history),
                     extra=fields(node=self.node()))
        return removed
