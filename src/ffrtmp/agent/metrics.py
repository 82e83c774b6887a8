"""Worker metrics: set by the agent's loop, read only by Prometheus (never by the agent)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric

from ffrtmp.agent.probes import Readiness


class DiskCollector:
    """Disk usage of the fullest filesystem the node writes to, measured at scrape time."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def collect(self) -> Iterator[Metric]:
        try:
            _, _, percent = self.readiness.disk()
        except OSError:
            return
        yield GaugeMetricFamily("worker_disk_usage_percent",
                                "Disk used on the fullest filesystem of the work dir and media roots",
                                value=percent)


class WorkerMetrics:
    def __init__(self, readiness: Readiness) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.heartbeat_failures = Counter("worker_heartbeat_failures",
                                          "Heartbeats that failed after their retries", registry=r)
        self.heartbeat_consecutive_failures = Gauge(
            "worker_heartbeat_consecutive_failures", "Heartbeats failed in a row", registry=r)
        self.active_jobs = Gauge("worker_active_jobs", "Jobs running on this node", registry=r)
        self.free_slots = Gauge("worker_free_slots", "Slots free for new jobs", registry=r)
        self.results_spooled = Gauge("worker_results_spooled",
                                     "Finished jobs whose result the master has not acknowledged",
                                     registry=r)
        self.ready = Gauge("worker_ready", "1 when /ready would answer 200", registry=r)
        self.progress = Gauge("worker_job_progress_percent", "Progress of running jobs", ["job_id"],
                              registry=r)
        self.jobs_launched = Counter("worker_jobs_launched", "Wrappers started for claimed jobs",
                                     registry=r)
        self.results_delivered = Counter("worker_results_delivered",
                                         "Results the master acknowledged", registry=r)
        self.media_bytes = Counter("worker_media_bytes", "Bytes of media staged or delivered",
                                   ["direction"], registry=r)
        self.media_retries = Counter("worker_media_transfer_retries",
                                     "Transfers tried again after the far end was unavailable",
                                     ["direction"], registry=r)
        self.media_waiting = Gauge("worker_media_transfers_active",
                                   "Inputs being staged and outputs being delivered", ["direction"],
                                   registry=r)
        self.media_store_up = Gauge("worker_media_store_up",
                                    "1 when the media store answers and takes the credentials "
                                    "(absent when none is configured)", registry=r)
        self.master_info = Gauge("worker_master_info",
                                 "1 for the master URL in use, 0 for the other configured ones",
                                 ["url"], registry=r)
        for direction in ("download", "upload"):
            for metric in (self.media_bytes, self.media_retries, self.media_waiting):
                metric.labels(direction)
        r.register(DiskCollector(readiness))

    def set_progress(self, values: dict[str, float]) -> None:
        """Replace the per-job progress series, so finished jobs leave no stale series."""
        self.progress.clear()
        for job, percent in values.items():
            self.progress.labels(job).set(percent)

    def set_master(self, urls: Sequence[str], in_use: str) -> None:
        """Which of the configured masters the agent uses (one series per URL, always present)."""
        for url in urls:
            self.master_info.labels(url).set(1 if url == in_use else 0)
