"""What the metrics read at scrape time: every gunicorn worker reports the same database truth."""

from __future__ import annotations

from typing import Any

from ffrtmp.contract import NodeStatus
from ffrtmp.master.store.records import QUEUE_VERSION
from ffrtmp.master.store.transactions import SqlCore


class CountsMixin(SqlCore):
    def counts(self) -> dict[str, Any]:
        """Jobs are what nodes run: a split job counts as its parts, not once more itself.
        Jobs are read from the counters every state change keeps (``records.transition``),
        so a scrape costs the same however many jobs the store holds."""
        conn = self._read()
        jobs = {row[0]: int(row[1]) for row in conn.execute(
            "SELECT key, SUM(n) FROM job_counts WHERE key <> ? GROUP BY key HAVING SUM(n) <> 0",
            (QUEUE_VERSION,)).fetchall()}
        nodes = {status.value: 0 for status in NodeStatus}
        for row in conn.execute("SELECT status, draining, COUNT(*) AS n FROM nodes"
                                " GROUP BY status, draining"):
            nodes[row["status"]] = nodes.get(row["status"], 0) + row["n"]
            if row["draining"]:
                nodes[NodeStatus.DRAINING] += row["n"]
        histograms: dict[str, dict[str, Any]] = {}
        for row in conn.execute("SELECT metric, le, count FROM histograms ORDER BY metric, le"):
            entry = histograms.setdefault(row["metric"], {"buckets": {}, "sum": 0.0, "count": 0})
            entry["buckets"][row["le"]] = row["count"]  # per bucket; the collector cumulates
        for row in conn.execute("SELECT metric, total, count FROM histogram_sums"):
            histograms.setdefault(row["metric"], {"buckets": {}, "sum": 0.0, "count": 0})
            histograms[row["metric"]].update(sum=row["total"], count=row["count"])
        return {"jobs": jobs, "nodes": nodes, "histograms": histograms}
