"""Open the store a database URL names; the dialects load only when asked for."""

from __future__ import annotations

from ffrtmp.master.store.protocol import Store

SQLITE_PREFIX = "sqlite:///"


def open_store(url: str) -> Store:
    """The URL was validated by the settings: ``sqlite:///<path>`` or ``postgresql://…``."""
    if url.startswith(SQLITE_PREFIX):
        from ffrtmp.master.store.sqlite import SqliteStore

        return SqliteStore(url[len(SQLITE_PREFIX):])
    from ffrtmp.master.store.postgres import PostgresStore

    return PostgresStore(url)
