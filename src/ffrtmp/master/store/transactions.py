"""Transactions for every SQL dialect: driver errors translated, log lines written after commit.

Each dialect supplies its connections (``_conn``) and one transaction (``_transaction``);
everything else about running a statement safely is here, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ffrtmp.master.store.errors import StoreUnavailable
from ffrtmp.master.store.rows import Conn

# The one logger of the store: its lines read "ffrtmp.master.store: job ...", whichever module.
log = logging.getLogger("ffrtmp.master.store")

_deferred = threading.local()


def after_commit(level: int, *args: Any, extra: dict[str, Any] | None = None) -> None:
    """Log once the transaction running on this thread commits (never for one rolled back)."""
    _deferred.lines.append((level, args, extra))


class SqlCore:
    """What a dialect provides, and the transaction every lifecycle change runs in.

    ``durable=False`` marks transactions whose loss on a power cut is harmless (claims,
    heartbeats, duties: each is redone or refused later); the dialects commit those without
    waiting for the disk. Submit, start, result and every operator action are durable.
    """

    FOR_UPDATE = ""  # what locks the rows a transaction decides on, where the dialect can
    SKIP_LOCKED = ""  # the same, passing over rows another transaction holds
    _failure: str | None = None

    def _conn(self) -> Conn:
        raise NotImplementedError

    def _transaction(self, durable: bool) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def _unavailable_code(self, exc: Exception) -> str | None:
        """The ``StoreUnavailable`` code for a driver error, or None for an error that is a bug."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def _read(self) -> Conn:
        with self._translated():
            return self._conn()

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[Conn]:
        """One transaction; log lines about it are written after it commits, outside any lock.

        A driver error that means "the database cannot write now" leaves as ``StoreUnavailable``
        (503 with a named code), so every write path answers a full, read-only or busy
        database the same way.
        """
        _deferred.lines = []
        try:
            with self._translated(), self._transaction(durable) as conn:
                yield conn
            self._note_failure(None)
            for level, args, extra in _deferred.lines:
                log.log(level, *args, extra=extra)
        finally:
            _deferred.lines = []

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors that mean "the database cannot serve this now" leave as ``StoreUnavailable``."""
        try:
            yield
        except Exception as exc:
            code = self._unavailable_code(exc)
            if code is None:
                raise
            self._note_failure(code, exc)
            raise StoreUnavailable(code, exc) from exc

    def _note_failure(self, code: str | None, exc: Exception | None = None) -> None:
        """Log when the database starts refusing and when writes work again, not per request."""
        if code is not None and self._failure != code:
            log.error("the database refuses requests (%s): %s", code, exc)
        elif code is None and self._failure is not None:
            log.info("the database takes writes again")
        self._failure = code
