"""A running job's progress: the figures its node reports between heartbeats, stamped here.

Progress is informational only: nothing in the master decides anything from it. So its writes
are non-durable (a power cut loses a second of figures, the next report replaces them) and
live in the jobs table, which every master on one database reads: ``jobs watch`` and the
console see a report at once, whichever master took it. Each stored figure set carries
``updated_at``, the master's clock when it arrived, so a reader can tell fresh from stale. A
job that succeeded reads 100 % (its last report came a moment before its end).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import JobState
from ffrtmp.isotime import iso_from_ts
from ffrtmp.master.store.transactions import SqlCore, touch


def stamped(progress: dict[str, Any], now: float) -> str:
    """The stored text of a report: the node's figures and when this master received them."""
    return json.dumps({**progress, "updated_at": iso_from_ts(now)})


def finished(progress: str | None, now: float) -> str:
    """A succeeded job's progress: its last figures with ``percent`` 100 and no time left."""
    last = json.loads(progress) if progress else {}
    return stamped({**(last if isinstance(last, dict) else {}), "percent": 100.0, "eta_s": 0.0}, now)


class ProgressMixin(SqlCore):
    def report_progress(self, node_id: str, running: Sequence[dict[str, Any]], *,
                        now: float | None = None) -> int:
        """Store each item's figures if it is this node's current, running attempt; how many
        were. Anything else (an old attempt, another node's, a job already ended) is skipped:
        a report may cross a result or a retry on the wire."""
        now = time.time() if now is None else now
        stored = 0
        with self._tx(durable=False) as conn:
            for item in running:
                if item.get("progress") is None:
                    continue
                row = conn.execute(
                    "SELECT parent_id FROM jobs WHERE id = ? AND attempt = ? AND node_id = ?"
                    " AND state = ?",
                    (item["job_id"], item["attempt"], node_id, JobState.RUNNING.value)).fetchone()
                if row is None:
                    continue
                conn.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                             (stamped(item["progress"], now), item["job_id"]))
                if row["parent_id"] is not None:  # its split job's progress follows
                    touch(item["job_id"], now)
                stored += 1
        return stored
