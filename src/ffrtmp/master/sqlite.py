"""SQLite in WAL mode: the embedded default. One connection per thread, opened lazily."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ffrtmp.master.schema import migrations
from ffrtmp.master.sqlstore import SqlStore

SQLITE_MIGRATIONS = migrations(serial="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
# Primary result codes (the low byte of an extended code) that mean "cannot write now".
UNAVAILABLE_CODES = {
    sqlite3.SQLITE_FULL: "store_full",
    sqlite3.SQLITE_READONLY: "store_read_only",
    sqlite3.SQLITE_BUSY: "store_busy",
    sqlite3.SQLITE_LOCKED: "store_busy",
    sqlite3.SQLITE_IOERR: "store_unavailable",
    sqlite3.SQLITE_CANTOPEN: "store_unavailable",
}


class SqliteStore(SqlStore):
    """SQLite in WAL mode; one connection per thread, opened lazily (safe across fork)."""

    MIGRATIONS = SQLITE_MIGRATIONS

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._pid = 0
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    # --- connections ---

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child never reuses its parent's connections
            self._local = threading.local()
            self._all = []
            self._write_lock = threading.Lock()
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_ms / 1000)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """Writers of this process queue on a lock rather than in SQLite's sleeping busy handler;
        a non-durable commit skips the fsync (WAL keeps it safe against a crash, not a power cut)."""
        conn = self._conn()
        with self._write_lock:
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after SQLITE_FULL and some I/O errors; a second
                # ROLLBACK would raise and hide the error that matters
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _unavailable_code(self, exc: Exception) -> str | None:
        if not isinstance(exc, sqlite3.OperationalError):
            return None
        code = UNAVAILABLE_CODES.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
        if code in ("store_read_only", "store_unavailable") and self._read_only_filesystem():
            return "store_read_only"  # SQLite says "unable to open" or "I/O error" for this
        return code

    def _read_only_filesystem(self) -> bool:
        try:
            return bool(os.statvfs(Path(self.path).resolve().parent).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def _read(self) -> sqlite3.Connection:
        with self._translated():
            return self._conn()
