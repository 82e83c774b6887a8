"""One connection per thread, opened lazily and never inherited across fork.

gunicorn forks its workers after the master may have opened the store: a child that used
its parent's socket or SQLite handle would corrupt both, so the cache starts empty in each
new process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class ConnectionCache(Generic[C]):
    def __init__(self, connect: Callable[[], C], close: Callable[[C], None], *,
                 alive: Callable[[C], bool] = lambda conn: True,
                 close_errors: tuple[type[Exception], ...] = ()) -> None:
        self._connect, self._close, self._alive = connect, close, alive
        self._close_errors = close_errors
        self._lock = threading.Lock()
        self._pid = 0
        self._fresh()

    def _fresh(self) -> None:
        self._local = threading.local()
        self._all: list[C] = []
        self._pid = os.getpid()

    def get(self) -> C:
        """This thread's connection; a new one if it has none or the server dropped it."""
        if self._pid != os.getpid():  # a forked child never reuses its parent's connections
            self._fresh()
        conn: C | None = getattr(self._local, "conn", None)
        if conn is None or not self._alive(conn):
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this process opened, from any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(*self._close_errors):
                self._close(conn)
        self._local = threading.local()
