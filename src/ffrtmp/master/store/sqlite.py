"""SQLite in WAL mode: the embedded default. A reading connection per thread, opened lazily,
and one writing connection per process (``writer``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ffrtmp.master.store.connections import ConnectionCache
from ffrtmp.master.store.rows import Conn
from ffrtmp.master.store.schema import migrations
from ffrtmp.master.store.sqlstore import SqlStore
from ffrtmp.master.store.transactions import open_durable
from ffrtmp.master.store.writer import GroupWriter

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
    """SQLite in WAL mode; ``?`` is its own placeholder, so statements run as written."""

    MIGRATIONS = migrations(serial="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connections = ConnectionCache(self._connect, sqlite3.Connection.close,
                                            close_errors=(sqlite3.Error,))
        self._writers: dict[int, GroupWriter] = {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout_ms / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """A member of this process's group commit (``writer``): the commit is durable if any
        member's transaction is, and a non-durable one skips the fsync (WAL keeps it safe
        against a crash, not a power cut)."""
        with self._writer().member(lambda: durable or open_durable()) as conn:
            yield conn

    def _writer(self) -> GroupWriter:
        """This process's writer; a forked child makes its own (never its parent's handle)."""
        writer = self._writers.get(os.getpid())
        if writer is None:
            writer = GroupWriter(self._connect, self.path, self.busy_timeout_ms / 1000,
                                 self._unavailable_code)
            self._writers = {os.getpid(): writer}
        return writer

    def _changes(self, conn: Conn) -> int:
        assert isinstance(conn, sqlite3.Connection)  # noqa: S101 -- this store's connections
        return conn.total_changes

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
        self._connections.close()
        writer = self._writers.pop(os.getpid(), None)
        if writer is not None:
            writer.close()
