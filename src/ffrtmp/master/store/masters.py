"""The masters sharing one database: each announces itself, and the duties name who ran them.

A master is keyed by its API address (``host:port``), so its gunicorn workers, which all
announce, are one row, and a restarted master takes its row back. ``started_at`` is kept while
the master stays up (a worker respawned by gunicorn passes its master's start, not its own).
"""

from __future__ import annotations

import time
from typing import Any

from ffrtmp.isotime import iso_from_ts
from ffrtmp.master.store.transactions import SqlCore, log

# Duty rows that are no duty: readiness writes one to prove the database takes writes.
_NOT_DUTIES = ("readiness probe",)


class MastersMixin(SqlCore):
    def announce_master(self, master_id: str, *, version: str, started_at: float,
                        now: float | None = None) -> None:
        """Record that ``master_id`` is up; cheap (one non-durable upsert), run per heartbeat."""
        now = time.time() if now is None else now
        with self._tx(durable=False) as conn:
            conn.execute(
                "INSERT INTO masters (id, version, started_at, last_seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version,"
                " started_at = excluded.started_at, last_seen = excluded.last_seen",
                (master_id, version, started_at, now))

    def list_masters(self) -> dict[str, Any]:
        """Every master announced, by id, and who last ran each duty: timestamps as the
        store gives them (``last_seen_ts`` stays a number, for the caller's ``up``)."""
        conn = self._read()
        masters = [{"id": r["id"], "version": r["version"],
                    "started_at": iso_from_ts(r["started_at"]),
                    "last_seen": iso_from_ts(r["last_seen"]), "last_seen_ts": r["last_seen"]}
                   for r in conn.execute("SELECT * FROM masters ORDER BY id")]
        duties = {r["name"]: {"holder": r["holder"], "at": iso_from_ts(r["held_at"])}
                  for r in conn.execute("SELECT name, holder, held_at FROM duties"
                                        " WHERE holder IS NOT NULL ORDER BY name")
                  if r["name"] not in _NOT_DUTIES}
        return {"masters": masters, "duties": duties}

    def prune_masters(self, before: float) -> int:
        """Forget masters not seen since ``before`` (retention): a host retired for good."""
        with self._tx(durable=False) as conn:
            gone = conn.execute("DELETE FROM masters WHERE last_seen < ? RETURNING id",
                                (before,)).fetchall()
        for row in gone:
            log.info("forgot master %s: not seen for the retention period", row["id"])
        return len(gone)
