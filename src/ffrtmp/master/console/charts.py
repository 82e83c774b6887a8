"""The last hour as two small charts, from what the store keeps (no metrics pipeline).

Both come from ``GET /api/v1/stats/queue``, which reads the history of state changes: the queue
depth (jobs queued at the end of each five-minute bucket, as ``ffrtmp_jobs_by_state`` counts
them) and the throughput (jobs that reached a final state in each bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chart:
    title: str
    values: list[int]
    width: int = 240
    height: int = 60

    @property
    def peak(self) -> int:
        return max(self.values, default=0)

    def bars(self) -> list[dict[str, float]]:
        """Each bucket's bar in SVG units, oldest on the left, scaled to the peak."""
        step = self.width / max(1, len(self.values))
        scale = (self.height - 2) / self.peak if self.peak else 0
        return [{"x": round(i * step + 1, 1), "w": round(step - 2, 1), "h": round(v * scale, 1),
                 "y": round(self.height - v * scale, 1), "v": v} for i, v in enumerate(self.values)]


def last_hour(stats: dict[str, Any]) -> tuple[Chart, Chart]:
    """(queue depth, throughput) from the body of ``GET /api/v1/stats/queue``."""
    buckets = stats["buckets"]
    return (Chart("queue depth (queued)", [int(b["queued"]) for b in buckets]),
            Chart("finished per 5 min", [int(b["finished"]) for b in buckets]))
