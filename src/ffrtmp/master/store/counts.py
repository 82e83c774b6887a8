"""What the metrics read at scrape time: every gunicorn worker reports the same database truth."""

from __future__ import annotations

from typing import Any

from ffrtmp.contract import NodeStatus, Step
from ffrtmp.master.store.transactions import SqlCore


class CountsMixin(SqlCore):
    def counts(self) -> dict[str, Any]:
        """Jobs are what nodes run: a split job counts as its parts, not once more itself."""
        conn = self._read()
        jobs = {row[0]: row[1] for row in conn.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE step <> ? GROUP BY state",
            (Step.SPLIT.value,)).fetchall()}
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
