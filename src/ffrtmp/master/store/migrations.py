"""The schema in force, and the probes that readiness runs against it."""

from __future__ import annotations

import time
from collections.abc import Callable

from ffrtmp.master.store.errors import StoreUnavailable
from ffrtmp.master.store.rows import Conn
from ffrtmp.master.store.sqltext import statements
from ffrtmp.master.store.transactions import SqlCore, log

MIGRATE_WAIT_S = 600.0  # how long a booting master waits for a busy database's lock
MIGRATE_RETRY_S = 0.2


class SchemaMixin(SqlCore):
    MIGRATIONS: tuple[str, ...] = ()  # each dialect's rendering of ``schema.migrations``

    def _migration_lock(self, conn: Conn) -> None:
        """Keep two processes from migrating at once (SQLite's write lock already does)."""

    def migrate(self, *, wait_s: float = MIGRATE_WAIT_S,
                waiting: Callable[[StoreUnavailable], None] | None = None) -> int:
        """Apply forward-only migrations in one transaction; return the schema version in force.

        A busy database (another writer holds its lock past the busy timeout) is waited for, up
        to ``wait_s``, saying so each time (``waiting``): a master that boots meanwhile starts
        late rather than not at all.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self._migrate_once()
            except StoreUnavailable as exc:
                if exc.code != "store_busy" or time.monotonic() >= deadline:
                    raise
                log.warning("the database is busy: waiting for the database lock to migrate (%s)",
                            exc.message)
                if waiting is not None:
                    waiting(exc)
                time.sleep(MIGRATE_RETRY_S)  # a refusal that came at once must not spin

    def _migrate_once(self) -> int:
        latest = len(self.MIGRATIONS)
        if self._current_version() == latest:  # no write: a worker boots on a read-only database
            return latest
        with self._tx() as conn:
            self._migration_lock(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > latest:
                raise RuntimeError(f"database schema {current} is newer than this ffrtmp ({latest}); "
                                   "upgrade ffrtmp")
            for version in range(current + 1, latest + 1):
                for statement in statements(self.MIGRATIONS[version - 1]):
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
        return int(row[0]) if row else 0

    def ping(self) -> None:
        self._read().execute("SELECT 1 FROM schema_version").fetchone()

    def probe_write(self, *, now: float | None = None) -> None:
        """A durable one-row write that nothing reads: readiness proves the database takes writes."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES ('readiness probe', ?)"
                         " ON CONFLICT (name) DO UPDATE SET next_run_at = excluded.next_run_at",
                         (now,))
