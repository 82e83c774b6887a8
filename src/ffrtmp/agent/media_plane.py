"""The agent's side of the media plane: stage a remote input, deliver the outputs, tidy up.

Both run as background transfers (``ffrtmp.agent.transfers``) that the loop asks about each
pass; what they achieved is recorded in the job directory (``fetched.json``, ``uploads.json``),
so an agent restarted mid-transfer resumes the transfer, never the encode. A job succeeds only
once every output is in place and verified; an output refused for good fails it with a reason
naming the URL and the status, and a failed or canceled job leaves nothing behind in the store.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from ffrtmp.agent.delivery import Output, UploadLog, plan, record
from ffrtmp.agent.jobs import LocalJob
from ffrtmp.agent.localize import localize
from ffrtmp.agent.metrics import WorkerMetrics
from ffrtmp.agent.probes import NOT_CONFIGURED
from ffrtmp.agent.transfers import Transfers, retrying
from ffrtmp.files import write_json_atomic
from ffrtmp.isotime import iso, utc_now
from ffrtmp.jobspec import JobSpec, RemoteFile, StitchStep
from ffrtmp.layout import ScratchDir, WorkDir
from ffrtmp.logs import fields
from ffrtmp.media.credentials import Credentials
from ffrtmp.media.errors import Canceled, Refused, TransferError
from ffrtmp.media.locations import is_store_url, resolve
from ffrtmp.media.webdav import WebDav
from ffrtmp.urls import redact
from ffrtmp.wrapper.result import (
    CANCELED,
    OUTPUT_NOT_PUBLISHED,
    OUTPUT_REFUSED,
    Result,
    platform_failure,
)

log = logging.getLogger(__name__)

DELIVERED = "delivered"  # how uploads.json records a delivery that completed
NOT_SUCCEEDED = "not_succeeded"  # the job failed or was canceled: nothing was to be delivered
PROBE_EVERY_S = 10.0
FETCH, UPLOAD = "fetch", "upload"  # a job's two transfers, each its own task
DOWNLOAD = "download"  # the metrics' direction of a fetch


@dataclass(frozen=True)
class Delivery:
    """What to report for a finished job: its result, and the records of its outputs."""

    result: Result
    outputs: list[dict[str, Any]]


class MediaPlane:
    def __init__(self, *, store_url: str | None, credentials: Credentials, work_dir: str,
                 wake: threading.Event, metrics: WorkerMetrics | None = None) -> None:
        self.store_url = store_url
        self.metrics = metrics
        self.dav = WebDav(credentials)
        self.work = WorkDir(Path(work_dir))
        self.transfers = Transfers(wake)
        self.status = NOT_CONFIGURED if store_url is None else "unknown"

    def resolve(self, url: str) -> str:
        return resolve(url, self.store_url)

    def scratch(self, job: LocalJob) -> ScratchDir:
        return self.work.job(job.job_id, job.attempt)

    def place(self, job: LocalJob, spec: JobSpec) -> JobSpec:
        """The spec as FFmpeg runs it here (``ffrtmp.agent.localize``)."""
        return localize(spec, self.scratch(job))

    def cancel(self, job: LocalJob) -> bool:
        """Stop a job's transfer; the job then ends canceled and removes what it uploaded."""
        canceled = [self.transfers.cancel((*job.key, phase)) for phase in (FETCH, UPLOAD)]
        return any(canceled)

    def delivering(self) -> bool:
        """Whether outputs are on their way now (a stopping agent waits for them, within bounds)."""
        return self.transfers.active(UPLOAD) > 0

    def forget(self, job: LocalJob) -> None:
        """The master has the result: the job's media leaves the work dir."""
        for phase in (FETCH, UPLOAD):
            self.transfers.forget((*job.key, phase))
        shutil.rmtree(self.scratch(job).path, ignore_errors=True)

    # --- the input ---

    def staged(self, job: LocalJob, spec: JobSpec) -> bool | TransferError:
        """True once every remote read is in the inbox, False while they are on their way, or
        why they are not."""
        remote = remote_reads(spec)
        if job.files.fetched.exists() or not remote:
            return True
        key = (*job.key, FETCH)
        task = self.transfers.start(key, lambda cancel: self.fetch(job, remote, cancel))
        if not task.done:
            return False
        self.transfers.forget(key)
        return task.error if task.error is not None else True

    def fetch(self, job: LocalJob, sources: list[RemoteFile], cancel: threading.Event) -> None:
        """Stage each of ``sources`` into the inbox, then write ``fetched.json``.

        A file already in the inbox is complete (a download renames its ``.part`` only then),
        so an agent restarted halfway through a stitch's inputs fetches only the rest.
        """
        ids = fields(job=job.job_id, attempt=job.attempt)
        inbox = self.scratch(job).inbox
        inbox.mkdir(parents=True, exist_ok=True)
        started, total = time.monotonic(), 0
        for source in sources:
            local, url = inbox / source.name, self.resolve(source.url)
            if local.exists():
                total += local.stat().st_size
                continue
            size = retrying(partial(self.dav.download, url, local, cancel=cancel), cancel, ids,
                            partial(self._count_retry, DOWNLOAD))
            self._count_bytes(DOWNLOAD, size)
            total += size
        write_json_atomic(job.files.fetched, {"url": redact(sources[0].url), "files": len(sources),
                                              "bytes": total, "at": iso(utc_now())})
        log.info("input staged: %d file(s), %d bytes in %.1f s", len(sources), total,
                 time.monotonic() - started, extra=ids)

    # --- the outputs ---

    def delivered(self, job: LocalJob, spec: JobSpec | None, result: Result, *,
                  start: bool = True) -> Delivery | None:
        """The job's report once its outputs are delivered (or abandoned); None meanwhile.

        ``spec`` is the job's spec as submitted (``place`` gives the files FFmpeg wrote); a
        stitch's delivery ends by removing the workspace it read, whose place only that knows.
        Without ``start``, a delivery not begun yet is not begun (None): a claim asks so, and
        the probes and uploads stay off the path of the next job's launch.
        """
        uploads = UploadLog.load(job.files.uploads)
        if uploads.ended is None:
            if spec is None or not result.success or result.canceled:
                self._abandon(job, uploads, NOT_SUCCEEDED)
            else:
                outputs = plan(self.place(job, spec), self.resolve)
                workspace = spec.step.workspace if isinstance(spec.step, StitchStep) else None
                key = (*job.key, UPLOAD)
                if not start and self.transfers.get(key) is None:
                    return None
                task = self.transfers.start(key, lambda cancel: self._deliver(
                    job, outputs, uploads, cancel, workspace))
                if not task.done:
                    return None
                self.transfers.forget(key)
                uploads = UploadLog.load(job.files.uploads)
                if uploads.ended is None:  # it ended on an error of its own: not delivered
                    self._abandon(job, uploads, f"{OUTPUT_NOT_PUBLISHED}: {task.error}")
        return _report(result, uploads)

    def _deliver(self, job: LocalJob, outputs: list[Output], uploads: UploadLog,
                 cancel: threading.Event, workspace: str | None = None) -> None:
        ids = fields(job=job.job_id, attempt=job.attempt)
        try:
            for index, output in enumerate(outputs):
                if index == len(uploads.records):
                    uploads.records.append(_record(output, ids))
                    uploads.save()
                self._upload(job, output, uploads, cancel, ids)
            if workspace is not None:  # the outputs are in place: the intermediates go
                self._tidy(workspace, cancel, ids)
        except (TransferError, OSError) as exc:
            reason = (CANCELED if isinstance(exc, Canceled) else f"{OUTPUT_REFUSED}: {exc}"
                      if isinstance(exc, TransferError) else f"{OUTPUT_NOT_PUBLISHED}: {exc}")
            log.error("outputs not delivered: %s", reason, extra=ids)
            self._abandon(job, uploads, reason)
            return
        uploads.ended = DELIVERED
        uploads.save()
        shutil.rmtree(self.scratch(job).path, ignore_errors=True)

    def _upload(self, job: LocalJob, output: Output, uploads: UploadLog,
                cancel: threading.Event, ids: dict[str, Any]) -> None:
        for piece in output.pieces():
            if piece.url in uploads.placed:
                continue
            size = retrying(partial(self.dav.upload, piece.local, piece.url, tag=job.dir.name,
                                    cancel=cancel), cancel, ids, partial(self._count_retry, UPLOAD))
            self._count_bytes(UPLOAD, size)
            uploads.placed.append(piece.url)
            uploads.save()
            log.info("delivered %s (%d bytes)", redact(piece.url), size, extra=ids)
            if cancel.is_set():  # canceled as it landed: what is placed is removed again
                raise Canceled("PUT", piece.url)

    def _tidy(self, workspace: str, cancel: threading.Event, ids: dict[str, Any]) -> None:
        """A stitch's last act: remove its workspace. A refusal is logged, not a failure: the
        outputs are in place, and failing would remove them and keep the intermediates."""
        try:
            self.remove_workspace(workspace, cancel, ids)
        except (Refused, OSError) as exc:
            log.error("cannot remove the split workspace %s: %s", redact(workspace), exc,
                      extra=ids)

    def remove_workspace(self, workspace: str, cancel: threading.Event,
                         ids: dict[str, Any]) -> None:
        """Remove a split job's intermediates, retried while the store is unavailable.

        In the store one DELETE of the collection removes it whole; on a media root the
        directory is removed. Removing one that is gone already is fine (a sweep run again).
        """
        if is_store_url(workspace):
            url = self.resolve(workspace)
            retrying(partial(self.dav.delete_collection, url), cancel, ids)
        else:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(workspace)
        log.info("split workspace %s removed", redact(workspace), extra=ids)

    def _abandon(self, job: LocalJob, uploads: UploadLog, reason: str) -> None:
        """Remove what this attempt placed in the store (best effort, one try each)."""
        for url in reversed(uploads.placed):
            try:
                self.dav.delete(url)
            except TransferError as exc:
                log.warning("cannot remove %s: %s", redact(url), exc,
                            extra=fields(job=job.job_id, attempt=job.attempt))
        uploads.placed, uploads.ended = [], reason
        uploads.save()
        shutil.rmtree(self.scratch(job).path, ignore_errors=True)

    # --- metrics (derived: nothing reads them back) ---

    def _count_bytes(self, direction: str, size: int) -> None:
        if self.metrics is not None:
            self.metrics.media_bytes.labels(direction).inc(size)

    def _count_retry(self, direction: str) -> None:
        if self.metrics is not None:
            self.metrics.media_retries.labels(direction).inc()

    def update_gauges(self) -> None:
        if self.metrics is None:
            return
        for phase, direction in ((FETCH, DOWNLOAD), (UPLOAD, UPLOAD)):
            self.metrics.media_waiting.labels(direction).set(self.transfers.active(phase))
        if self.store_url is not None:
            self.metrics.media_store_up.set(1 if self.status == "reachable" else 0)

    # --- readiness ---

    def probe(self, stop: threading.Event) -> None:
        """Keep ``status`` current for /ready: the store answers, and takes our credentials."""
        if self.store_url is None:
            return
        while not stop.is_set():
            self.status = self.dav.check(self.store_url + "/")
            stop.wait(PROBE_EVERY_S if self.status == "reachable" else 2.0)


def remote_reads(spec: JobSpec) -> list[RemoteFile]:
    """What the job reads that is staged first: its remote input, or a stitch's intermediates."""
    return [source for source in spec.reads() if isinstance(source, RemoteFile)]


def _record(output: Output, ids: dict[str, Any]) -> dict[str, Any]:
    """The output's record; an empty one for a published file gone since (moved on by its
    consumer after an earlier delivery attempt): nothing to say about it, nothing to fail."""
    if output.upload is None and not output.file.exists():
        log.warning("output %s is gone since it was published: not recorded", output.file,
                    extra=ids)
        return {}
    return record(output)


def _report(result: Result, uploads: UploadLog) -> Delivery:
    if uploads.ended == DELIVERED:
        return Delivery(result, [r for r in uploads.records if r])
    if uploads.ended == CANCELED:
        return Delivery(replace(result, canceled=True, reason=CANCELED), [])
    if uploads.ended in (None, NOT_SUCCEEDED):
        return Delivery(result, [])
    return Delivery(platform_failure(result, uploads.ended or OUTPUT_REFUSED), [])
