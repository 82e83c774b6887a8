"""Open the store a database URL names; the dialects load only when asked for."""

from __future__ import annotations

from ffrtmp.master.store.protocol import Store

SQLITE_PREFIX = "sqlite:///"


def open_store(url: str, *, password_file: str | None = None) -> Store:
    """The URL was validated by the settings: ``sqlite:///<path>`` or ``postgresql://…``.

    A PostgreSQL password comes from ``password_file`` (``FFRTMP_DATABASE_PASSWORD_FILE``), read
    here once and handed to the driver alone: never in the URL, the environment or a log line.
    """
    if url.startswith(SQLITE_PREFIX):
        from ffrtmp.master.store.sqlite import SqliteStore

        return SqliteStore(url[len(SQLITE_PREFIX):])
    from ffrtmp.config import read_password_file
    from ffrtmp.master.store.postgres import PostgresStore

    return PostgresStore(url, password=read_password_file(password_file) if password_file else None)
