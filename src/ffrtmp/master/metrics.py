"""Master metrics: state counted from the database at scrape time, plus request counters.

``StoreCollector`` yields fresh families on every scrape, so every gunicorn worker tells the
same truth about jobs and nodes. Request counters are per process by nature; under gunicorn
they use prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
``ffrtmp master`` before the workers fork) so a scrape sums every worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ffrtmp.contract import JobState, NodeStatus
from ffrtmp.master.store.protocol import BUCKETS, Store

HISTOGRAMS = {
    "queue_wait": ("ffrtmp_job_queue_wait_seconds", "Seconds finished jobs waited from submit to start"),
    "run": ("ffrtmp_job_run_seconds", "Seconds finished jobs ran from start to result"),
}


class StoreCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        counts = self.store.counts()
        jobs, nodes = counts["jobs"], counts["nodes"]
        yield GaugeMetricFamily("ffrtmp_jobs_pending", "Jobs queued and waiting for a node",
                                value=jobs.get(JobState.QUEUED, 0))
        yield _by_label("ffrtmp_jobs_by_state", "Jobs in the store by state", "state", JobState, jobs)
        yield GaugeMetricFamily("ffrtmp_nodes_offline", "Registered nodes that stopped heartbeating",
                                value=nodes.get(NodeStatus.OFFLINE, 0))
        yield _by_label("ffrtmp_nodes_by_status", "Registered nodes by status", "status", NodeStatus,
                        nodes)
        for key, (name, doc) in HISTOGRAMS.items():
            data = counts["histograms"].get(key, {"buckets": {}, "sum": 0.0, "count": 0})
            family = HistogramMetricFamily(name, doc)
            family.add_metric([], _cumulative(data["buckets"]), data["sum"])
            yield family


def _by_label(name: str, doc: str, label: str, values: Iterable[str],
              counts: dict[str, int]) -> GaugeMetricFamily:
    """One sample per value, zero where the store counted none, so every series always exists."""
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value in values:
        family.add_metric([str(value)], counts.get(value, 0))
    return family


def _cumulative(per_bucket: dict[float, int]) -> list[tuple[str, float]]:
    """Every bucket, counting all observations at or below its bound (the store keeps each alone)."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound in BUCKETS:
        stored = 1e308 if bound == float("inf") else float(bound)
        running += per_bucket.get(stored, 0)
        buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
    return buckets


class MasterMetrics:
    """The master's metrics; ``render()`` answers a scrape from a registry built for it."""

    def __init__(self, store: Store) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.store_collector = StoreCollector(store)
        self.requests = Counter("ffrtmp_http_requests", "HTTP requests by route template",
                                ["method", "route", "status"], registry=None)
        self.claims_waiting = Gauge("ffrtmp_claims_waiting", "Agent claims long-polling for work",
                                    registry=None, multiprocess_mode="livesum")

    def render(self) -> tuple[bytes, str]:
        registry = CollectorRegistry()
        registry.register(self.store_collector)
        if self.multiprocess:
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        else:
            registry.register(self.requests)
            registry.register(self.claims_waiting)
        return generate_latest(registry), CONTENT_TYPE_LATEST
