"""Copy a SQLite farm's store into an empty PostgreSQL database (``ffrtmp db migrate-to``).

Run on the master's host with the master stopped: the SQLite file is opened with an exclusive
lock, which a running master (any open connection) keeps it from taking, so nothing changes
under the copy. The target is migrated to this ffrtmp's schema, must hold no job and no node,
and receives every row in one transaction, whose row counts are checked before it commits:
either the whole farm is there, or nothing is. Node credentials are stored hashed and copied
as they are, so every agent keeps working against the new database.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from ffrtmp.master.store.errors import StoreError
from ffrtmp.master.store.postgres import PostgresStore
from ffrtmp.master.store.sqlite import SqliteStore

# Copied row for row, parents before the rows that refer to them.
TABLES = ("nodes", "jobs", "attempts", "transitions", "histograms", "histogram_sums", "duties")
# Rebuilt rather than copied: the job counters folded to one row per key (their shards are
# SQLite's), the schema version (the target migrates itself), the masters (they announce
# themselves), SQLite's own bookkeeping.
REBUILT = ("job_counts", "schema_version", "masters", "sqlite_sequence")
IDENTITIES = (("jobs", "seq"), ("transitions", "id"))  # the target's sequences continue after them
BATCH = 1000
LOCK_WAIT_S = 2.0


class MigrateError(Exception):
    """A refusal to say as one line: nothing was copied."""


def migrate_to(source_path: str, target_url: str, *, password: str | None = None,
               say: Callable[[str], None] = lambda line: None) -> dict[str, int]:
    """Copy the SQLite store at ``source_path`` into ``target_url``; return rows per table."""
    if not Path(source_path).is_file():
        raise MigrateError(f"no SQLite database at {source_path}")
    with _exclusive(source_path):  # refuse early, before migrating anything
        pass
    source_store = SqliteStore(source_path)
    try:
        say(f"source {source_path}: schema {source_store.migrate()}")
    finally:
        source_store.close()
    _closing_migrate(PostgresStore(target_url, password=password), say)
    try:
        return _copy_all(source_path, target_url, password)
    except psycopg.Error as exc:
        raise MigrateError(f"the copy failed, nothing was committed: {_first_line(exc)}") from None


def _copy_all(source_path: str, target_url: str, password: str | None) -> dict[str, int]:
    with _exclusive(source_path) as source, \
            psycopg.connect(target_url, password=password, autocommit=True) as target:
        _refuse_unknown_tables(source)
        _refuse_if_not_empty(target)
        with target.transaction():
            copied = {table: _copy(source, target, table) for table in TABLES}
            copied["job_counts"] = _copy_counts(source, target)
            _continue_identities(target)
            _verify(source, target, copied)
    return copied


def _closing_migrate(store: PostgresStore, say: Callable[[str], None]) -> None:
    try:
        say(f"target: schema {store.migrate(wait_s=LOCK_WAIT_S)}")
    except (psycopg.Error, StoreError, RuntimeError) as exc:
        raise MigrateError(f"cannot migrate the target database: {_first_line(exc)}") from None
    finally:
        store.close()


@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[sqlite3.Connection]:
    """The source under an exclusive lock for as long as the copy reads it."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=LOCK_WAIT_S)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        raise MigrateError(f"the SQLite database {path} is in use ({exc}): is the master running? "
                           "stop it first (systemctl stop ffrtmp-master)") from None
    try:
        yield conn
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def _refuse_unknown_tables(source: sqlite3.Connection) -> None:
    """A table this ffrtmp does not know would be left behind: refuse rather than lose it."""
    names = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    unknown = sorted(names - set(TABLES) - set(REBUILT))
    if unknown:
        raise MigrateError(f"the SQLite database has tables this ffrtmp cannot copy: {', '.join(unknown)}")


def _refuse_if_not_empty(target: psycopg.Connection[Any]) -> None:
    counts = {t: _count(target, t) for t in ("jobs", "nodes")}
    if any(counts.values()):
        raise MigrateError(f"the target database already holds {counts['jobs']} job(s) and "
                           f"{counts['nodes']} node(s): migrate-to copies into an empty database only")


def _count(conn: Any, table: str) -> int:
    row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(row[0])


def _copy(source: sqlite3.Connection, target: psycopg.Connection[Any], table: str) -> int:
    """Every row of ``table``, by column name; the target's own rows of it (a readiness probe,
    counters of no job) go first, as the source has them all."""
    cursor = source.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cursor.description]
    insert = (f"INSERT INTO {table} ({', '.join(columns)})"
              f" VALUES ({', '.join(['%s'] * len(columns))})")
    target.execute(f"DELETE FROM {table}")
    copied = 0
    with target.cursor() as out:
        while rows := cursor.fetchmany(BATCH):
            out.executemany(insert, [tuple(row) for row in rows])
            copied += len(rows)
    return copied


def _copy_counts(source: sqlite3.Connection, target: psycopg.Connection[Any]) -> int:
    """The job counters, one row per key in the shard nobody writes (0)."""
    sums = source.execute("SELECT key, SUM(n) FROM job_counts GROUP BY key").fetchall()
    target.execute("DELETE FROM job_counts")
    with target.cursor() as out:
        out.executemany("INSERT INTO job_counts (key, shard, n) VALUES (%s, 0, %s)",
                        [(key, int(n)) for key, n in sums])
    return len(sums)


def _continue_identities(target: psycopg.Connection[Any]) -> None:
    """Copied keys were given explicitly: the next job or transition gets the key after them."""
    for table, column in IDENTITIES:
        target.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s),"
                       f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)",
                       (table, column))


def _verify(source: sqlite3.Connection, target: psycopg.Connection[Any],
            copied: dict[str, int]) -> None:
    """Before the commit: each table holds as many rows as the source, and the counters agree."""
    for table in TABLES:
        want, got = _count(source, table), _count(target, table)
        if want != got or got != copied[table]:
            raise MigrateError(f"{table}: {want} row(s) in the source, {got} in the target; "
                               "nothing was committed")
    query = "SELECT key, SUM(n) FROM job_counts GROUP BY key ORDER BY key"
    want_counts = [(k, int(n)) for k, n in source.execute(query).fetchall()]
    got_counts = [(k, int(n)) for k, n in target.execute(query).fetchall()]
    if want_counts != got_counts:
        raise MigrateError("the job counters differ after the copy; nothing was committed")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
