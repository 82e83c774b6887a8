"""One pass of the agent: heartbeat, cancel/drain, collect, refill freed slots, deliver, claim.

A step that fails logs one line with job=/node= and returns; only shutdown leaves the loop.
Nothing here re-runs a workload: a job that could not start is reported, never retried.
A start is a message: one whose reply never came keeps its job, unlaunched, until the master
answers it (``confirm_pending``); only the master's answer decides whether it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ffrtmp import jobspec
from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable, Outcome
from ffrtmp.agent.jobs import JobTable, LocalJob, Unreadable
from ffrtmp.agent.media_plane import MediaPlane, remote_reads
from ffrtmp.agent.metrics import WorkerMetrics
from ffrtmp.agent.probes import Readiness
from ffrtmp.agent.progress_reports import ProgressReports
from ffrtmp.agent.steps import Steps
from ffrtmp.files import write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.jobspec import JobSpec
from ffrtmp.logs import fields
from ffrtmp.media.errors import Canceled
from ffrtmp.shutdown import Shutdown
from ffrtmp.wrapper.result import CANCELED, INPUT_REFUSED

log = logging.getLogger(__name__)

LONG_POLL_MAX_S = 10.0
ACTIVE_TICK_S = 0.5
HEARTBEAT_MAX_ATTEMPTS = 256  # the most a heartbeat may list (the master's limit)


class Forgotten(Exception):
    """The master no longer knows this node: register again."""


class AgentLoop:
    def __init__(self, *, client: MasterClient, jobs: JobTable, readiness: Readiness,
                 metrics: WorkerMetrics, shutdown: Shutdown, slots: int,
                 media_roots: tuple[str, ...], media: MediaPlane, steps: Steps | None = None) -> None:
        self.client, self.jobs, self.readiness, self.media = client, jobs, readiness, media
        self.steps = steps or Steps(jobs, media)
        self.metrics, self.shutdown, self.slots = metrics, shutdown, slots
        self.media_roots = media_roots
        self.draining = False
        self.heartbeat_interval_s = 5.0
        self.next_heartbeat = 0.0
        self.next_confirm = 0.0  # when the starts awaiting an answer are sent again
        self.consecutive_failures = 0
        # claim for a freed slot before delivering its result, listing the results on their
        # way as ended (until a master refuses the field: then deliver first, as before it)
        self.refill_early = True
        self.progress = ProgressReports(client, jobs)  # figures between heartbeats, once a second

    # --- one pass ---

    def run_once(self, *, claiming: bool = True, wait: Callable[[float], object] | None = None) -> None:
        """A slot freed since the last pass is refilled first (claim, start, launch, never a
        long-poll while results wait), its result carried by the claim when it is ready and
        the master takes it so; the other results go out next: the slot does not idle
        through their round trip."""
        if time.monotonic() >= self.next_heartbeat:
            self.heartbeat()
        self.confirm_pending()
        self.jobs.poll()
        self.steps.poll(self.jobs.typed_spec)
        self.launch_staged()
        early = claiming and self.refill_early and bool(self.jobs.undelivered())
        refilled = self.claim_and_launch() if early else 0
        delivered = self.deliver_results()
        self.progress.send_due()  # after the slot's refill and the results: it only informs
        self.jobs.prune()
        self._update_gauges()  # before a claim that may long-poll: the gauges show this pass
        # an early claim that got nothing is asked again only once a result has gone out (it
        # may have held the last place the master keeps for results on their way)
        again = claiming and not refilled and (not early or delivered > 0 or not self.refill_early)
        launched = refilled or (self.claim_and_launch() if again else 0)
        if launched:
            self._update_gauges()
        if not launched:
            self._idle(wait or self.shutdown.wait)

    def heartbeat(self) -> None:
        # every attempt this node still holds, results not yet delivered and starts not yet
        # answered included: the master ends a running attempt that its node's heartbeats leave
        # out (reconciliation), and a start it committed may be one whose reply was lost
        running = [{"job_id": j.job_id, "attempt": j.attempt, "progress": self.jobs.progress(j)}
                   for j in [*self.jobs.running(), *self.jobs.undelivered()][:HEARTBEAT_MAX_ATTEMPTS]]
        self.next_heartbeat = time.monotonic() + self.heartbeat_interval_s
        try:
            reply = self.client.heartbeat(running, self.free_slots())
        except MasterUnavailable as exc:
            self._heartbeat_failed("timeout" if exc.timeout else "unreachable", str(exc))
            return
        except MasterRejected as exc:
            if exc.forgotten:
                raise Forgotten(str(exc)) from None
            self._heartbeat_failed("unreachable", str(exc))
            return
        self.consecutive_failures = 0
        self.readiness.record_heartbeat("reachable")
        self.heartbeat_interval_s = float(reply.get("heartbeat_interval_s", self.heartbeat_interval_s))
        self.readiness.heartbeat_interval_s = self.heartbeat_interval_s
        if reply["drain"] != self.draining:
            log.info("master says %s", "drain" if reply["drain"] else "undrain",
                     extra=fields(node=self.client.node_id))
            self.draining = reply["drain"]
        for item in reply["cancel"]:
            if not self.jobs.cancel(item["job_id"], item["attempt"]):
                self._cancel_transfer(item["job_id"], item["attempt"])

    def _cancel_transfer(self, job_id: str, attempt: int) -> None:
        """A job between its encode and its report (or before it) cancels its transfer."""
        job = self.jobs.jobs.get((job_id, attempt))
        if job is not None and (self.media.cancel(job) or self.steps.cancel(job)):
            log.info("cancel requested by the master: transfer stopped",
                     extra=fields(job=job_id, attempt=attempt, node=self.client.node_id))

    def _heartbeat_failed(self, status: str, why: str) -> None:
        self.consecutive_failures += 1
        self.metrics.heartbeat_failures.inc()
        self.readiness.record_heartbeat(status)
        log.warning("heartbeat failed (%s); %d in a row", why, self.consecutive_failures,
                    extra=fields(node=self.client.node_id))

    def deliver_results(self) -> int:
        """Every result ready to go, in one request (one per item to a master without batches);
        how many the master has now (accepted or refused)."""
        ready = self._ready_results()
        if not ready:
            return 0
        try:
            outcomes = self.client.results([(job.job_id, body) for job, body in ready])
        except MasterUnavailable as exc:
            outcomes = [exc] * len(ready)
        except MasterRejected as exc:
            if exc.forgotten:
                raise Forgotten(str(exc)) from None
            outcomes = [exc] * len(ready)
        return self._results_sent(ready, outcomes)

    def _ready_results(self, *, start: bool = True) -> list[tuple[LocalJob, dict[str, Any]]]:
        """The results whose outputs have arrived, with the bodies that deliver them; without
        ``start``, no delivery is begun (``MediaPlane.delivered``)."""
        ready: list[tuple[LocalJob, dict[str, Any]]] = []
        for job in self.jobs.undelivered():
            try:
                result = self.jobs.final_result(job)
            except Unreadable as exc:
                self.jobs.quarantine(job.dir, exc)  # its replacement goes out next pass
                continue
            delivery = self.media.delivered(job, self.jobs.typed_spec(job), result, start=start)
            if delivery is None:
                continue  # its outputs are on their way; heartbeats keep the attempt
            ready.append((job, self.jobs.body(job, delivery.result, delivery.outputs)))
        return ready

    def _results_sent(self, ready: list[tuple[LocalJob, dict[str, Any]]],
                      outcomes: list[Outcome]) -> int:
        """Settle each delivery as the master answered it; how many it has now."""
        forgotten = [o for (job, body), o in zip(ready, outcomes, strict=True)
                     if not self._result_sent(job, body, o)]
        if forgotten:
            raise Forgotten(str(forgotten[0]))
        return sum(1 for o in outcomes if not isinstance(o, MasterUnavailable))

    def _result_sent(self, job: LocalJob, body: dict[str, Any], outcome: Outcome) -> bool:
        """Settle one delivery as the master answered it: delivered, refused (kept with the
        refusal, never resent) or not arrived (kept in the spool). False: the node is forgotten."""
        ids = fields(job=job.job_id, attempt=job.attempt, node=self.client.node_id)
        if isinstance(outcome, MasterUnavailable):
            log.warning("result not delivered yet (%s); kept in the spool", outcome, extra=ids)
            return True
        if isinstance(outcome, MasterRejected):
            if outcome.forgotten:
                return False
            log.error("master refused the result: %s", outcome, extra=ids)
            outcome = {"refused": outcome.status, "code": outcome.code, "message": outcome.message}
        self.jobs.mark_delivered(job, outcome)
        self.media.forget(job)
        self.steps.forget(job)
        self.metrics.results_delivered.inc()
        log.info("result delivered: %s", body["outcome"], extra=ids)
        return True

    def free_slots(self) -> int:
        return max(0, self.slots - len(self.jobs.running()))

    def can_claim(self) -> bool:
        ready, _ = self.readiness.snapshot()
        return ready and not self.draining and not self.shutdown.requested and self.free_slots() > 0

    def claim_and_launch(self) -> int:
        """Claim the free slots, delivering in the same message the results that are ready
        (their slots are the ones to refill), then start what was claimed."""
        if not self.can_claim():
            return 0
        busy = bool(self.jobs.running() or self.jobs.undelivered())  # never long-poll over a result
        wait = 0.0 if busy else max(0.0, min(self.next_heartbeat - time.monotonic(), LONG_POLL_MAX_S))
        # results on their way hold no slot: the master refills them before the results land
        ended = [j.key for j in self.jobs.undelivered()] if self.refill_early else []
        ready = self._ready_results(start=False) if self.refill_early else []
        assignments = self._claim(wait, ended, ready)
        if assignments is None:
            return 0
        prepared: list[tuple[LocalJob, JobSpec]] = []
        for assignment in assignments:
            if self.shutdown.requested or not self.readiness.snapshot()[0]:
                # claimed by a long-poll that began before this; never started, so it is
                # safe for the master to hand it to another node when the lease runs out
                log.info("%s: leaving the assignment to its lease",
                         "shutting down" if self.shutdown.requested else "not ready",
                         extra=fields(job=assignment["job_id"], node=self.client.node_id))
                continue
            if (prepared_one := self._prepare(assignment)) is not None:
                prepared.append(prepared_one)
        self._start(prepared)
        return len(assignments)

    def _claim(self, wait: float, ended: list[tuple[str, int]],
               ready: list[tuple[LocalJob, dict[str, Any]]]) -> list[dict[str, Any]] | None:
        """The claim message (with ``ready`` results, settled here if it carried them); None
        when it failed or was refused."""
        try:
            assignments, outcomes = self.client.claim_delivering(
                self.free_slots(), wait, ended, [(job.job_id, body) for job, body in ready])
        except MasterUnavailable as exc:
            log.warning("claim failed: %s", exc, extra=fields(node=self.client.node_id))
            return None
        except MasterRejected as exc:
            if exc.forgotten:
                raise Forgotten(str(exc)) from None
            if ended and exc.code == "invalid" and exc.message.startswith("ended"):
                # a master from before ``ended``: it counts a result against its slot until
                # the result lands, so claiming before delivering only costs a round trip
                log.info("the master refills a slot only after its result: delivering first",
                         extra=fields(node=self.client.node_id))
                self.refill_early = False
                return None
            log.error("claim refused: %s", exc, extra=fields(node=self.client.node_id))
            return None
        if outcomes is not None:
            self._results_sent(ready, outcomes)
        return assignments

    def _prepare(self, assignment: dict[str, Any]) -> tuple[LocalJob, JobSpec] | None:
        """Record the assignment; one whose spec fails the local checks is reported, not started."""
        try:
            spec = jobspec.parse(assignment["spec"], self.media_roots)
        except jobspec.SpecError as exc:
            job = self.jobs.prepare(assignment, None)
            log.error("job refused by local checks: %s: %s", exc.field, exc.message,
                      extra=fields(job=job.job_id, attempt=job.attempt, node=self.client.node_id))
            self.jobs.reject(job, f"spec_rejected: {exc.field}: {exc.message}")
            return None
        return self.jobs.prepare(assignment, spec), spec

    def confirm_pending(self) -> None:
        """Send again the starts whose reply never came, at the heartbeats' cadence and only
        while they get through (the client's own backoff inside each try), never while shutting
        down (they stay on disk for the next start); launch those the master confirms."""
        if self.shutdown.requested or self.consecutive_failures or time.monotonic() < self.next_confirm:
            return
        pending = self.jobs.pending()
        if not pending:  # looked for again after the next start (``_start``)
            self.next_confirm = float("inf")
            return
        prepared: list[tuple[LocalJob, JobSpec]] = []
        for job in pending:
            try:
                prepared.append((job, jobspec.parse(job.spec, self.media_roots)))
            except jobspec.SpecError as exc:
                self.jobs.reject(job, f"spec_rejected: {exc.field}: {exc.message}")
        self._start(prepared)

    def _start(self, prepared: list[tuple[LocalJob, JobSpec]]) -> None:
        """Confirm first (all of one claim in one request), then launch: no workload ever runs
        without its own confirmed attempt. A start not answered is kept for a later pass (the
        master may have committed it); one the master refuses is forgotten."""
        if not prepared:
            return
        try:
            outcomes = self.client.starts([(job.job_id, job.attempt_token) for job, _ in prepared])
        except (MasterUnavailable, MasterRejected) as exc:
            outcomes = [exc] * len(prepared)
        self.next_confirm = time.monotonic() + self.heartbeat_interval_s
        forgotten = None
        for (job, spec), outcome in zip(prepared, outcomes, strict=True):
            ids = fields(job=job.job_id, attempt=job.attempt, node=self.client.node_id)
            if isinstance(outcome, dict):
                self.jobs.start_confirmed(job)
                self._begin(job, spec)
            elif isinstance(outcome, MasterUnavailable):
                self.jobs.await_start(job)
                log.warning("start not confirmed (%s); kept, not running it until the master "
                            "answers its start", outcome, extra=ids)
            else:
                log.warning("start refused (%s); not running it", outcome, extra=ids)
                self.jobs.forget(job)
                forgotten = outcome if outcome.forgotten else forgotten
        if forgotten is not None:
            raise Forgotten(str(forgotten))

    def _begin(self, job: LocalJob, spec: JobSpec) -> None:
        """A confirmed attempt: the agent's own step, a staging, or the wrapper."""
        if job.runs_here:  # a plan or a sweep: the agent's own task, no wrapper
            self.steps.run(job, spec)
            return
        if remote_reads(spec):  # staged first, launched by a later pass
            write_json_atomic(job.files.fetching, {"at": iso(utc_now())})
            self.media.staged(job, spec)
            return
        self._launch(job, spec)

    def launch_staged(self) -> None:
        """Launch each job whose input has been staged since; report those it could not be.

        Not while shutting down: the next start launches it (its start is confirmed already).
        """
        if self.shutdown.requested:
            return
        for job in self.jobs.running():
            if not job.awaiting_launch:
                continue
            try:
                spec = jobspec.parse(job.spec, self.media_roots)
            except jobspec.SpecError as exc:
                self.jobs.reject(job, f"spec_rejected: {exc.field}: {exc.message}")
                continue
            staged = self.media.staged(job, spec)
            if staged is True:
                self._launch(job, spec)
            elif staged is not False:
                canceled = isinstance(staged, Canceled)
                self.jobs.reject(job, CANCELED if canceled else f"{INPUT_REFUSED}: {staged}",
                                 platform_sla=canceled, canceled=canceled)

    def _launch(self, job: LocalJob, spec: JobSpec) -> None:
        ids = fields(job=job.job_id, attempt=job.attempt, node=self.client.node_id)
        try:
            self.jobs.launch(job, spec)
        except OSError as exc:
            log.error("could not launch the wrapper: %s", exc, extra=ids)
            self.jobs.reject(job, f"start_failed: {exc}")
            return
        self.metrics.jobs_launched.inc()

    def _update_gauges(self) -> None:
        running = self.jobs.running()
        self.metrics.active_jobs.set(len(running))
        self.metrics.free_slots.set(self.free_slots())
        self.metrics.results_spooled.set(len(self.jobs.undelivered()))
        self.metrics.heartbeat_consecutive_failures.set(self.consecutive_failures)
        self.metrics.ready.set(1 if self.readiness.snapshot()[0] else 0)
        self.media.update_gauges()
        self.metrics.set_progress({j.job_id: p["percent"] for j in running
                                   if (p := self.jobs.progress(j)) and "percent" in p})

    def _idle(self, wait: Callable[[float], object]) -> None:
        """Sleep until a wrapper of ours exits, the next tick, or shutdown, whichever is first."""
        if self.jobs.running() or self.jobs.undelivered():
            if self.jobs.changed.wait(ACTIVE_TICK_S):
                self.jobs.changed.clear()
            return
        wait(max(0.05, min(self.next_heartbeat - time.monotonic(), 1.0)))

