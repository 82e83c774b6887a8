"""The lifecycle rules as SQL transactions, written once for every database ffrtmp supports.

Each state change is one transaction. SQLite serialises writers (``BEGIN IMMEDIATE``);
PostgreSQL locks the rows a transaction decides on (``FOR UPDATE``) and lets concurrent
claims pass each other (``SKIP LOCKED``). Updates made by background duties name the state
they expect, so a start or a result that lands at the same moment always wins cleanly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ffrtmp.logs import fields
from ffrtmp.master.store import (
    BUCKETS,
    FINAL,
    ID_PREFIXES,
    PRIORITY_RANK,
    QUEUE_RANK,
    RETRYABLE,
    Assignment,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
    attempt_dict,
    iso,
    job_dict,
    new_id,
    node_dict,
    token_hash,
)

log = logging.getLogger("ffrtmp.master.store")

Row = Any  # sqlite3.Row or the PostgreSQL equivalent: both index by name and by position


class Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


class SqlStore:
    """Subclasses provide connections and one transaction: ``_transaction(durable)``.

    ``durable=False`` marks transactions whose loss on a power cut is harmless (claims,
    heartbeats, duties: each is redone or refused later); the stores commit those without
    waiting for the disk. Submit, start, result and every operator action are durable.
    """

    MIGRATIONS: tuple[str, ...] = ()
    FOR_UPDATE = ""
    SKIP_LOCKED = ""
    _deferred = threading.local()

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[Conn]:
        raise NotImplementedError
        yield

    @contextlib.contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[Conn]:
        """One transaction; log lines about it are written after it commits, outside any lock.

        A driver error that means "the database cannot write now" leaves as ``Unavailable``
        (503 with a named code), so every write path answers a full, read-only or busy
        database the same way.
        """
        self._deferred.lines = []
        try:
            with self._translated(), self._transaction(durable) as conn:
                yield conn
            self._note_failure(None)
            for level, args, extra in self._deferred.lines:
                log.log(level, *args, extra=extra)
        finally:
            self._deferred.lines = []

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors that mean "the database cannot serve this now" leave as ``Unavailable``."""
        try:
            yield
        except Exception as exc:
            code = self._unavailable_code(exc)
            if code is None:
                raise
            self._note_failure(code, exc)
            raise Unavailable(code, exc) from exc

    def _unavailable_code(self, exc: Exception) -> str | None:
        """The ``Unavailable`` code for a driver error, or None for an error that is a bug."""
        return None

    _failure: str | None = None

    def _note_failure(self, code: str | None, exc: Exception | None = None) -> None:
        """Log when the database starts refusing and when writes work again, not per request."""
        if code is not None and self._failure != code:
            log.error("the database refuses requests (%s): %s", code, exc)
        elif code is None and self._failure is not None:
            log.info("the database takes writes again")
        self._failure = code

    def _log(self, level: int, *args: Any, extra: dict[str, Any] | None = None) -> None:
        self._deferred.lines.append((level, args, extra))

    def _read(self) -> Conn:
        raise NotImplementedError

    def _migration_lock(self, conn: Conn) -> None:
        """Keep two processes from migrating at once (SQLite's write lock already does)."""

    # --- schema ---

    def migrate(self) -> int:
        """Apply forward-only migrations in one transaction; return the schema version in force."""
        latest = len(self.MIGRATIONS)
        if self._current_version() == latest:  # no write: a worker boots on a read-only database
            return latest
        with self._tx() as conn:
            self._migration_lock(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > latest:
                raise RuntimeError(f"database schema {current} is newer than this ffrtmp ({latest}); "
                                   "upgrade ffrtmp")
            for version in range(current + 1, latest + 1):
                for statement in self.MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                log.info("applied schema migration %d", version)
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (latest,))
            elif current != latest:
                conn.execute("UPDATE schema_version SET version = ?", (latest,))
        return latest

    def _current_version(self) -> int | None:
        try:
            return self.schema_version()
        except Exception:  # no schema yet, or the database is away: the migration will say which
            return None

    def schema_version(self) -> int:
        row = self._read().execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def ping(self) -> None:
        self._read().execute("SELECT 1 FROM schema_version").fetchone()

    def probe_write(self, *, now: float | None = None) -> None:
        """A durable one-row write that nothing reads: readiness proves the database takes writes."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES ('readiness probe', ?)"
                         " ON CONFLICT (name) DO UPDATE SET next_run_at = excluded.next_run_at",
                         (now,))

    def queue_marker(self) -> tuple[int, int]:
        """Changes when jobs are queued or leave the queue: a cheap read for long-polls."""
        row = self._read().execute(
            "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM jobs WHERE state = 'queued'").fetchone()
        return row[0], row[1]

    def _transition(self, conn: Conn, job_id: str, now: float, from_state: str | None,
                    to_state: str, attempt: int, node_id: str | None, reason: str) -> None:
        conn.execute(
            "INSERT INTO transitions (job_id, at, from_state, to_state, attempt, node_id, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, now, from_state, to_state, attempt, node_id, reason))
        self._log(logging.INFO, "job %s: %s -> %s (%s)", job_id, from_state or "-", to_state, reason,
                  extra=fields(job=job_id, node=node_id, attempt=attempt or None))

    def _job_row(self, conn: Conn, job_id: str) -> Row:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?" + self.FOR_UPDATE, (job_id,)).fetchone()
        if row is None:
            raise NotFound("job_not_found", f"no job {job_id}")
        return row

    @staticmethod
    def _observe(conn: Conn, metric: str, value: float) -> None:
        """Count ``value`` in the one bucket it falls in; ``counts()`` makes them cumulative."""
        value = max(0.0, value)
        le = next(b for b in BUCKETS if value <= b)
        conn.execute(
            "INSERT INTO histograms (metric, le, count) VALUES (?, ?, 1)"
            " ON CONFLICT (metric, le) DO UPDATE SET count = histograms.count + 1",
            (metric, le if le != float("inf") else 1e308))
        conn.execute(
            "INSERT INTO histogram_sums (metric, total, count) VALUES (?, ?, 1)"
            " ON CONFLICT (metric) DO UPDATE SET total = histogram_sums.total + excluded.total,"
            " count = histogram_sums.count + 1", (metric, value))

    # --- jobs (operators) ---

    def submit_job(self, spec: dict[str, Any], *, queue: str, priority: str,
                   capabilities: Sequence[str], intent: str | None,
                   now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        job_id = new_id(ID_PREFIXES["job"])
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, state, spec, queue_rank, priority_rank, capabilities,"
                " intent, created_at, updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, json.dumps(spec), QUEUE_RANK[queue], PRIORITY_RANK[priority],
                 json.dumps(sorted(capabilities)), intent, now, now))
            self._transition(conn, job_id, now, None, "queued", 0, None, "submitted")
        return self.get_job(job_id)

    def get_job(self, job_id: str, *, with_history: bool = True) -> dict[str, Any]:
        conn = self._read()
        row = self._job_row(conn, job_id)
        job = job_dict(row)
        if with_history:
            job["attempts"] = [attempt_dict(a) for a in conn.execute(
                "SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,))]
            job["history"] = [
                {"at": iso(t["at"]), "from": t["from_state"], "to": t["to_state"],
                 "attempt": t["attempt"], "node_id": t["node_id"], "reason": t["reason"]}
                for t in conn.execute(
                    "SELECT * FROM transitions WHERE job_id = ? ORDER BY id", (job_id,))]
        return job

    def list_jobs(self, *, states: Sequence[str] = (), queue: str | None = None,
                  node_id: str | None = None, limit: int = 100,
                  before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; ``before`` is the cursor (a job's ``seq``) returned as the second value."""
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        if queue:
            where.append("queue_rank = ?")
            args.append(QUEUE_RANK[queue])
        if node_id:
            where.append("node_id = ?")
            args.append(node_id)
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read().execute(
            f"SELECT * FROM jobs {clause} ORDER BY seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [job_dict(r) for r in rows], (rows[-1]["seq"] if more else None)

    def job_log(self, job_id: str) -> dict[str, Any]:
        conn = self._read()
        job = self._job_row(conn, job_id)
        row = conn.execute("SELECT attempt, log_tail FROM attempts WHERE job_id = ?"
                           " ORDER BY attempt DESC LIMIT 1", (job_id,)).fetchone()
        return {"job_id": job_id, "attempt": job["attempt"],
                "log": (row["log_tail"] if row else None) or ""}

    def cancel_job(self, job_id: str, *, now: float | None = None) -> dict[str, Any]:
        """Queued/assigned jobs end at once; running ones are marked and canceled by their node."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job = self._job_row(conn, job_id)
            state = job["state"]
            if state in FINAL:
                raise Conflict("job_finished", f"job {job_id} already {state}")
            if state in ("queued", "assigned"):
                conn.execute("UPDATE jobs SET state = 'canceled', cancel_requested = 1,"
                             " updated_at = ?, finished_at = ? WHERE id = ?", (now, now, job_id))
                conn.execute("UPDATE attempts SET state = 'canceled', ended_at = ?"
                             " WHERE job_id = ? AND attempt = ?", (now, job_id, job["attempt"]))
                self._transition(conn, job_id, now, state, "canceled", job["attempt"],
                                 job["node_id"], "canceled by operator")
            else:  # running or lost: the node stops it and reports the outcome
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                             (now, job_id))
                self._log(logging.INFO, "job %s: cancel requested", job_id,
                          extra=fields(job=job_id, node=job["node_id"]))
        return self.get_job(job_id)

    def retry_job(self, job_id: str, *, now: float | None = None) -> dict[str, Any]:
        """A human's new attempt: the old attempt's token is fenced off (stale → 409)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job = self._job_row(conn, job_id)
            if job["state"] not in RETRYABLE:
                raise Conflict("not_retryable",
                               f"job {job_id} is {job['state']}; only failed, canceled or lost "
                               "jobs can be retried")
            conn.execute("UPDATE attempts SET state = 'superseded' WHERE job_id = ? AND attempt = ?"
                         " AND state IN ('assigned', 'running', 'lost')", (job_id, job["attempt"]))
            conn.execute("UPDATE jobs SET state = 'queued', node_id = NULL, cancel_requested = 0,"
                         " progress = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                         (now, job_id))
            self._transition(conn, job_id, now, job["state"], "queued", job["attempt"], None,
                             "retried by operator")
        return self.get_job(job_id)

    # --- nodes ---

    def register_node(self, *, name: str, slots: int, encoders: Sequence[str],
                      hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                      agent_version: str, live_s: float, heard_since: float = 0.0,
                      now: float | None = None) -> tuple[dict[str, Any], str, bool]:
        """Enroll by name (see ``_enroll``); return (node, credential, created)."""
        now = time.time() if now is None else now
        facts = self._facts(name, slots, encoders, hwaccels, labels, ffmpeg_version, agent_version)
        with self._tx() as conn:
            node_id, credential, how = self._enroll(conn, facts, live_s, heard_since, now)
            self._write_facts(conn, node_id, facts, now, credential)
            self._log(logging.WARNING if how.startswith("took over") else logging.INFO,
                      "node %s registered as %s (%s)", name, node_id, how, extra=fields(node=node_id))
        return self.get_node(node_id), credential, how == "new"

    def refresh_node(self, node_id: str, *, name: str, slots: int, encoders: Sequence[str],
                     hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                     agent_version: str, now: float | None = None) -> dict[str, Any]:
        """A node's own start: its facts replace those it had; its id and credential stay."""
        now = time.time() if now is None else now
        facts = self._facts(name, slots, encoders, hwaccels, labels, ffmpeg_version, agent_version)
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM nodes WHERE id = ?" + self.FOR_UPDATE,
                            (node_id,)).fetchone() is None:
                raise NotFound("node_not_found", f"no node {node_id}")
            self._refuse_taken_name(conn, name, node_id, now)
            self._write_facts(conn, node_id, facts, now)
            self._log(logging.INFO, "node %s (%s) started: facts refreshed, %d slots", name, node_id,
                      slots, extra=fields(node=node_id))
        return self.get_node(node_id)

    @staticmethod
    def _facts(name: str, slots: int, encoders: Sequence[str], hwaccels: Sequence[str],
               labels: dict[str, str], ffmpeg_version: str, agent_version: str) -> tuple[Any, ...]:
        """The node columns an agent reports, in the order ``_write_facts`` sets them."""
        return (name, slots, json.dumps(sorted(set(encoders))), json.dumps(sorted(set(hwaccels))),
                json.dumps(labels), ffmpeg_version, agent_version)

    @staticmethod
    def _write_facts(conn: Conn, node_id: str, facts: tuple[Any, ...], now: float,
                     credential: str | None = None) -> None:
        conn.execute(
            "UPDATE nodes SET name = ?, slots = ?, encoders = ?, hwaccels = ?, labels = ?,"
            " ffmpeg_version = ?, agent_version = ?, status = 'online', last_heartbeat = ?,"
            " credential_hash = COALESCE(?, credential_hash) WHERE id = ?",
            (*facts, now, token_hash(credential) if credential else None, node_id))

    def _enroll(self, conn: Conn, facts: tuple[Any, ...], live_s: float, heard_since: float,
                now: float) -> tuple[str, str, str]:
        """A registration by name: (node id, new credential, how).

        A free name makes a new node. The name of a node heard from within ``live_s`` is
        refused, so nobody holding only the enrollment token takes over a live node. A silent
        node's name is taken over (a re-imaged host): same id, and its old credential revoked.
        Silence counts only since ``heard_since``, when this master could first hear heartbeats:
        after an outage, a node that could not reach the master is not silent.
        """
        name, credential = facts[0], secrets.token_urlsafe(32)
        row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ?" + self.FOR_UPDATE,
                           (name,)).fetchone()
        if row is None:
            node_id = new_id(ID_PREFIXES["node"])
            inserted = conn.execute(
                "INSERT INTO nodes (id, name, slots, encoders, hwaccels, labels, ffmpeg_version,"
                " agent_version, credential_hash, registered_at, last_heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (node_id, *facts, token_hash(credential), now, now))
            if inserted.rowcount == 1:
                return node_id, credential, "new"
            row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ?",
                               (name,)).fetchone()  # registered a moment ago by a concurrent call
        silent_s = now - max(row["last_heartbeat"], heard_since)
        if silent_s <= live_s:
            raise self._name_in_use(name, row, now, f"; if this host replaces it, stop that agent "
                                    f"and register again after {live_s:.0f}s of silence")
        return row["id"], credential, (f"took over the name of a node silent for {silent_s:.0f}s;"
                                       " its old credential is revoked")

    def _refuse_taken_name(self, conn: Conn, name: str, node_id: str, now: float) -> None:
        """A node may rename itself, but never onto another node's name."""
        row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ? AND id <> ?",
                           (name, node_id)).fetchone()
        if row is not None:
            raise self._name_in_use(name, row, now, "")

    @staticmethod
    def _name_in_use(name: str, row: Row, now: float, hint: str) -> Conflict:
        return Conflict("node_name_in_use",
                        f"node name {name!r} belongs to node {row['id']}, last heard from "
                        f"{max(0.0, now - row['last_heartbeat']):.0f}s ago: give this agent its own "
                        f"FFRTMP_NODE_NAME, or remove that node (ffrtmp nodes remove {row['id']})"
                        f"{hint}", details={"node_id": row["id"], "name": name})

    def node_for_credential(self, credential: str) -> str | None:
        row = self._read().execute("SELECT id FROM nodes WHERE credential_hash = ?",
                                   (token_hash(credential),)).fetchone()
        return row["id"] if row else None

    def get_node(self, node_id: str) -> dict[str, Any]:
        conn = self._read()
        row = conn.execute("SELECT * FROM nodes WHERE id = ?", (node_id,)).fetchone()
        if row is None:
            raise NotFound("node_not_found", f"no node {node_id}")
        return node_dict(row, self._running_count(conn, node_id))

    def list_nodes(self) -> list[dict[str, Any]]:
        conn = self._read()
        counts = {row[0]: row[1] for row in conn.execute(
            "SELECT node_id, COUNT(*) FROM jobs WHERE state IN ('assigned', 'running')"
            " GROUP BY node_id").fetchall()}
        return [node_dict(r, counts.get(r["id"], 0))
                for r in conn.execute("SELECT * FROM nodes ORDER BY name")]

    @staticmethod
    def _running_count(conn: Conn, node_id: str) -> int:
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE node_id = ? AND state IN"
                            " ('assigned', 'running')", (node_id,)).fetchone()[0]

    def set_draining(self, node_id: str, draining: bool) -> dict[str, Any]:
        with self._tx() as conn:
            cur = conn.execute("UPDATE nodes SET draining = ? WHERE id = ?", (int(draining), node_id))
            if cur.rowcount == 0:
                raise NotFound("node_not_found", f"no node {node_id}")
        log.info("node %s %s", node_id, "draining" if draining else "undrained",
                 extra=fields(node=node_id))
        return self.get_node(node_id)

    def remove_node(self, node_id: str) -> None:
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is None:
                raise NotFound("node_not_found", f"no node {node_id}")
            running = self._running_count(conn, node_id)
            if running:
                raise Conflict("node_busy", f"node {node_id} has {running} running job(s); "
                               "drain it and wait, or cancel them first")
            conn.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
        log.info("node %s removed", node_id, extra=fields(node=node_id))

    def heartbeat(self, node_id: str, running: Sequence[dict[str, Any]], *,
                  unlisted_after_s: float | None = None, now: float | None = None) -> dict[str, Any]:
        """Record liveness and progress; return cancel requests and the drain flag.

        With ``unlisted_after_s``, the node's running attempts are reconciled with ``running``.
        """
        now = time.time() if now is None else now
        cancel: list[dict[str, Any]] = []
        with self._tx(durable=False) as conn:
            node = conn.execute("SELECT status, draining FROM nodes WHERE id = ?",
                                (node_id,)).fetchone()
            if node is None:
                raise NotFound("node_not_found", f"no node {node_id}")
            conn.execute("UPDATE nodes SET last_heartbeat = ?, status = 'online' WHERE id = ?",
                         (now, node_id))
            if node["status"] == "offline":
                self._log(logging.INFO, "node %s is back online", node_id, extra=fields(node=node_id))
            for item in running:
                job = conn.execute(
                    "SELECT j.id, j.cancel_requested, j.attempt AS current_attempt FROM jobs j"
                    " JOIN attempts a ON a.job_id = j.id AND a.attempt = ?"
                    " WHERE j.id = ? AND a.node_id = ?",
                    (item["attempt"], item["job_id"], node_id)).fetchone()
                if job is None:
                    continue
                if job["cancel_requested"] and job["current_attempt"] == item["attempt"]:
                    cancel.append({"job_id": job["id"], "attempt": item["attempt"]})
                if item.get("progress") is not None and job["current_attempt"] == item["attempt"]:
                    conn.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                                 (json.dumps(item["progress"]), job["id"]))
            if unlisted_after_s is not None:
                self._reconcile(conn, node_id, running, unlisted_after_s, now)
        return {"cancel": cancel, "drain": bool(node["draining"])}

    def _reconcile(self, conn: Conn, node_id: str, running: Sequence[dict[str, Any]],
                   after_s: float, now: float) -> None:
        """A running attempt its live node has stopped listing for ``after_s`` ends ``lost``.

        The clock starts at the first heartbeat that leaves it out (kept in the attempt, so it
        survives master restarts and works across masters) and stops when it is listed again:
        one heartbeat never ends an attempt. Assigned attempts keep their lease instead: never
        confirmed, they go back to the queue.
        """
        listed = {(item["job_id"], item["attempt"]) for item in running}
        rows = conn.execute(
            "SELECT a.job_id, a.attempt, a.unlisted_since FROM attempts a"
            " JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt"
            " WHERE a.node_id = ? AND a.state = 'running' AND j.state = 'running'",
            (node_id,)).fetchall()
        for row in rows:
            key = (row["job_id"], row["attempt"])
            since = row["unlisted_since"]
            if (key in listed) != (since is None):  # listed again, or left out for the first time
                conn.execute("UPDATE attempts SET unlisted_since = ? WHERE job_id = ? AND attempt = ?",
                             (None if key in listed else now, *key))
            if key in listed or since is None or now - since <= after_s:
                continue
            ended = conn.execute("UPDATE jobs SET state = 'lost', updated_at = ? WHERE id = ?"
                                 " AND state = 'running' AND attempt = ?", (now, *key))
            if ended.rowcount != 1:
                continue
            conn.execute("UPDATE attempts SET state = 'lost', ended_at = ? WHERE job_id = ?"
                         " AND attempt = ?", (now, *key))
            self._transition(conn, row["job_id"], now, "running", "lost", row["attempt"], node_id,
                             f"node no longer knows this attempt: not in its heartbeats for "
                             f"{now - since:.0f}s")
            self._log(logging.WARNING, "job %s: its node no longer knows attempt %d; ended as lost",
                      row["job_id"], row["attempt"],
                      extra=fields(job=row["job_id"], node=node_id, attempt=row["attempt"]))

    # --- the claim / start / result protocol (agents) ---

    def claim(self, node_id: str, slots: int, *, lease_s: float,
              now: float | None = None) -> list[Assignment]:
        """Assign up to ``slots`` queued jobs this node can run, in dispatch order."""
        now = time.time() if now is None else now
        if self.queue_marker()[0] == 0:  # nothing queued: answer without taking the write lock
            if self._read().execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is None:
                raise NotFound("node_not_found", f"no node {node_id}")
            return []
        with self._tx(durable=False) as conn:
            node = conn.execute("SELECT * FROM nodes WHERE id = ?" + self.FOR_UPDATE,
                                (node_id,)).fetchone()
            if node is None:
                raise NotFound("node_not_found", f"no node {node_id}")
            conn.execute("UPDATE nodes SET last_heartbeat = ?, status = 'online' WHERE id = ?",
                         (now, node_id))
            if node["draining"]:
                return []
            capacity = min(slots, node["slots"] - self._running_count(conn, node_id))
            if capacity <= 0:
                return []
            have = set(json.loads(node["encoders"])) | set(json.loads(node["hwaccels"]))
            picked: list[Row] = []
            last = (-1, -1, -1)
            while len(picked) < capacity:
                batch = conn.execute(
                    "SELECT id, seq, capabilities, attempt, queue_rank, priority_rank"
                    " FROM jobs WHERE state = 'queued' AND (queue_rank, priority_rank, seq) > (?, ?, ?)"
                    " ORDER BY queue_rank, priority_rank, seq LIMIT 200" + self.SKIP_LOCKED, last).fetchall()
                if not batch:
                    break
                for row in batch:
                    if set(json.loads(row["capabilities"])) <= have:
                        picked.append(row)
                        if len(picked) == capacity:
                            break
                tail = batch[-1]
                last = (tail["queue_rank"], tail["priority_rank"], tail["seq"])
            return [self._assign(conn, row, node_id, now=now, lease=now + lease_s) for row in picked]

    def _assign(self, conn: Conn, row: Row, node_id: str, *, now: float, lease: float) -> Assignment:
        """One queued job becomes this node's next attempt, with a fresh token and lease."""
        attempt = row["attempt"] + 1
        token = secrets.token_urlsafe(24)
        conn.execute("UPDATE jobs SET state = 'assigned', node_id = ?, attempt = ?,"
                     " progress = NULL, updated_at = ? WHERE id = ?",
                     (node_id, attempt, now, row["id"]))
        conn.execute(
            "INSERT INTO attempts (job_id, attempt, node_id, token_hash, state,"
            " assigned_at, lease_expires_at) VALUES (?, ?, ?, ?, 'assigned', ?, ?)",
            (row["id"], attempt, node_id, token_hash(token), now, lease))
        self._transition(conn, row["id"], now, "queued", "assigned", attempt, node_id, "claimed")
        spec = conn.execute("SELECT spec FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return Assignment(row["id"], attempt, token, lease, json.loads(spec["spec"]))

    def _attempt_for_token(self, conn: Conn, job_id: str, node_id: str,
                           token: str) -> tuple[Row, Row]:
        job = self._job_row(conn, job_id)
        attempt = conn.execute("SELECT * FROM attempts WHERE token_hash = ?",
                               (token_hash(token),)).fetchone()
        if attempt is None or attempt["job_id"] != job_id:
            raise Conflict("stale_attempt", f"attempt token is not valid for job {job_id}")
        if attempt["node_id"] != node_id:
            raise Forbidden("not_your_attempt", f"attempt {attempt['attempt']} of job {job_id} "
                            "belongs to another node")
        return job, attempt

    def start(self, job_id: str, node_id: str, token: str, *,
              now: float | None = None) -> dict[str, Any]:
        """Confirm the workload started: assigned → running (idempotent for the same token)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            job, attempt = self._attempt_for_token(conn, job_id, node_id, token)
            if attempt["state"] == "running":
                return {"job_id": job_id, "attempt": attempt["attempt"], "state": "running"}
            if attempt["state"] != "assigned" or job["attempt"] != attempt["attempt"]:
                raise Conflict("stale_attempt", f"attempt {attempt['attempt']} of job {job_id} is "
                               f"{attempt['state']}; do not run it")
            conn.execute("UPDATE attempts SET state = 'running', started_at = ?"
                         " WHERE job_id = ? AND attempt = ?", (now, job_id, attempt["attempt"]))
            conn.execute("UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ?",
                         (now, job_id))
            self._transition(conn, job_id, now, "assigned", "running", attempt["attempt"],
                             node_id, "workload started")
        return {"job_id": job_id, "attempt": attempt["attempt"], "state": "running"}

    def record_result(self, job_id: str, node_id: str, token: str, result: dict[str, Any], *,
                      log_tail: str = "", now: float | None = None) -> dict[str, Any]:
        """Decide the job from its current attempt's result; a duplicate delivery is a no-op."""
        now = time.time() if now is None else now
        outcome = result["outcome"]
        with self._tx() as conn:
            job, attempt = self._attempt_for_token(conn, job_id, node_id, token)
            n = attempt["attempt"]
            if attempt["result"] is not None:
                if json.loads(attempt["result"]) == result:
                    return {"job_id": job_id, "attempt": n, "state": job["state"]}
                raise Conflict("result_conflict",
                               f"attempt {n} of job {job_id} already reported a different result")
            if job["attempt"] != n or attempt["state"] not in ("assigned", "running", "lost"):
                raise Conflict("stale_attempt", f"attempt {n} of job {job_id} is "
                               f"{attempt['state']}; its result is not accepted")
            started = attempt["started_at"] or now
            conn.execute("UPDATE attempts SET state = ?, ended_at = ?, result = ?, log_tail = ?,"
                         " started_at = ? WHERE job_id = ? AND attempt = ?",
                         (outcome, now, json.dumps(result), log_tail[-65536:], started, job_id, n))
            if job["state"] == "canceled":  # canceled while assigned; keep the operator's word
                return {"job_id": job_id, "attempt": n, "state": "canceled"}
            conn.execute("UPDATE jobs SET state = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                         (outcome, now, now, job_id))
            reason = result.get("reason") or outcome
            if job["state"] == "lost":
                reason += " (late result after lost)"
            self._transition(conn, job_id, now, job["state"], outcome, n, node_id, reason)
            self._observe(conn, "queue_wait", started - job["created_at"])
            self._observe(conn, "run", now - started)
        return {"job_id": job_id, "attempt": n, "state": outcome}

    # --- background duties: functions of (store, now) ---

    def try_duty(self, name: str, interval_s: float, *, now: float | None = None) -> bool:
        """True for exactly one caller per interval across every process sharing the database."""
        now = time.time() if now is None else now
        with self._tx(durable=False) as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)"
                         " ON CONFLICT DO NOTHING", (name,))
            cur = conn.execute("UPDATE duties SET next_run_at = ? WHERE name = ? AND next_run_at <= ?",
                               (now + interval_s, name, now))
            return cur.rowcount == 1

    def expire_leases(self, *, now: float | None = None) -> list[str]:
        """Unconfirmed assignments past their lease go back to the queue."""
        now = time.time() if now is None else now
        expired = []
        with self._tx(durable=False) as conn:
            rows = conn.execute("SELECT a.job_id, a.attempt, a.node_id FROM attempts a"
                                " JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt"
                                " WHERE a.state = 'assigned' AND j.state = 'assigned'"
                                " AND a.lease_expires_at < ?", (now,)).fetchall()
            for row in rows:
                requeued = conn.execute(
                    "UPDATE jobs SET state = 'queued', node_id = NULL, updated_at = ?"
                    " WHERE id = ? AND state = 'assigned' AND attempt = ?",
                    (now, row["job_id"], row["attempt"]))
                if requeued.rowcount != 1:  # started or canceled meanwhile
                    continue
                conn.execute("UPDATE attempts SET state = 'expired' WHERE job_id = ? AND attempt = ?",
                             (row["job_id"], row["attempt"]))
                self._transition(conn, row["job_id"], now, "assigned", "queued", row["attempt"],
                                 row["node_id"], "lease expired before the node confirmed start")
                expired.append(row["job_id"])
        return expired

    def mark_offline(self, timeout_s: float, *, now: float | None = None) -> list[str]:
        """Silent nodes go offline; their running jobs become lost (never re-run automatically)."""
        now = time.time() if now is None else now
        lost = []
        with self._tx(durable=False) as conn:
            nodes = conn.execute("SELECT id FROM nodes WHERE status = 'online'"
                                 " AND last_heartbeat < ?", (now - timeout_s,)).fetchall()
            for node in nodes:
                conn.execute("UPDATE nodes SET status = 'offline' WHERE id = ?", (node["id"],))
                self._log(logging.WARNING, "node %s is offline: no heartbeat for %.0fs", node["id"],
                          timeout_s, extra=fields(node=node["id"]))
                for job in conn.execute("SELECT id, attempt FROM jobs WHERE node_id = ?"
                                        " AND state = 'running'", (node["id"],)).fetchall():
                    marked = conn.execute("UPDATE jobs SET state = 'lost', updated_at = ? WHERE id = ?"
                                          " AND state = 'running' AND attempt = ?",
                                          (now, job["id"], job["attempt"]))
                    if marked.rowcount != 1:  # its result arrived meanwhile
                        continue
                    conn.execute("UPDATE attempts SET state = 'lost' WHERE job_id = ?"
                                 " AND attempt = ?", (job["id"], job["attempt"]))
                    self._transition(conn, job["id"], now, "running", "lost", job["attempt"],
                                     node["id"], "node stopped heartbeating")
                    lost.append(job["id"])
        return lost

    def purge_finished(self, retention_days: int, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'canceled')"
                               " AND finished_at < ?", (now - retention_days * 86400,))
            count = cur.rowcount
        if count:
            log.info("removed %d finished job(s) older than %d days", count, retention_days)
        return count

    # --- metrics ---

    def counts(self) -> dict[str, Any]:
        conn = self._read()
        jobs = {row[0]: row[1] for row in conn.execute(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()}
        nodes = {"online": 0, "offline": 0, "draining": 0}
        for row in conn.execute("SELECT status, draining, COUNT(*) AS n FROM nodes"
                                " GROUP BY status, draining"):
            nodes[row["status"]] = nodes.get(row["status"], 0) + row["n"]
            if row["draining"]:
                nodes["draining"] += row["n"]
        histograms: dict[str, dict[str, Any]] = {}
        for row in conn.execute("SELECT metric, le, count FROM histograms ORDER BY metric, le"):
            entry = histograms.setdefault(row["metric"], {"buckets": {}, "sum": 0.0, "count": 0})
            entry["buckets"][row["le"]] = row["count"]  # per bucket; the collector cumulates
        for row in conn.execute("SELECT metric, total, count FROM histogram_sums"):
            histograms.setdefault(row["metric"], {"buckets": {}, "sum": 0.0, "count": 0})
            histograms[row["metric"]].update(sum=row["total"], count=row["count"])
        return {"jobs": jobs, "nodes": nodes, "histograms": histograms}
