"""The last hour as two small charts, from the jobs the store keeps (no metrics pipeline).

Throughput: jobs that finished in each five-minute bucket (``finished_at``). Backlog: jobs
submitted and not yet finished (queued or running) at the end of each bucket (``created_at``
and ``finished_at``). The store keeps no per-bucket queue history, so the backlog is rebuilt
from the newest jobs (at most ``MAX_JOBS``) plus every unfinished one, whatever its age.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ffrtmp.isotime import parse_iso

WINDOW_S = 3600
BUCKETS = 12
MAX_JOBS = 3000
PAGE = 500
UNFINISHED = "queued,assigned,running"

Fetch = Callable[[dict[str, Any]], dict[str, Any]]


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


def _ts(value: Any) -> float | None:
    return parse_iso(value).timestamp() if isinstance(value, str) else None


def _recent(fetch: Fetch, since: float) -> Iterable[dict[str, Any]]:
    """The newest jobs, page by page, until one was created before ``since`` (or MAX_JOBS)."""
    cursor, seen = None, 0
    while seen < MAX_JOBS:
        page = fetch({"limit": PAGE, **({"cursor": cursor} if cursor else {})})
        yield from page["jobs"]
        seen += len(page["jobs"])
        cursor = page.get("next_cursor")
        oldest = _ts(page["jobs"][-1]["created_at"]) if page["jobs"] else None
        if cursor is None or oldest is None or oldest < since:
            return


def last_hour(fetch: Fetch, now: float | None = None) -> tuple[Chart, Chart]:
    """(backlog, throughput) over the last hour; ``fetch`` lists jobs as GET /api/v1/jobs does."""
    end = time.time() if now is None else now
    start = end - WINDOW_S
    jobs = {j["id"]: j for j in _recent(fetch, start - WINDOW_S)}
    jobs.update({j["id"]: j for j in fetch({"state": UNFINISHED, "limit": PAGE})["jobs"]})
    width = WINDOW_S / BUCKETS
    edges = [start + width * (i + 1) for i in range(BUCKETS)]
    done, backlog = [0] * BUCKETS, [0] * BUCKETS
    for job in jobs.values():
        created, finished = _ts(job.get("created_at")), _ts(job.get("finished_at"))
        if finished is not None and start <= finished < end:
            done[min(BUCKETS - 1, int((finished - start) // width))] += 1
        for i, edge in enumerate(edges):
            if created is not None and created <= edge and (finished is None or finished > edge):
                backlog[i] += 1
    return Chart("backlog (queued + running)", backlog), Chart("finished per 5 min", done)
