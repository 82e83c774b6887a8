"""Transactions for every SQL dialect: driver errors translated, log lines written after commit.

Each dialect supplies its connections (``_conn``) and one transaction (``_transaction``);
everything else about running a statement safely is here, once. Every job a transaction
changes is noted (``touch``), and before it commits ``_settle`` advances what those changes
imply (a split job derives from its children), so the consequence commits with its cause.
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
SETTLE_ROUNDS = 8  # settling a child settles its parent, which may add children: never deeper


def touch(job_id: str, now: float) -> None:
    """Note that the transaction running on this thread changed ``job_id`` (at ``now``)."""
    _deferred.touched[job_id] = max(now, _deferred.touched.get(job_id, now))


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

    def _settle(self, conn: Conn, touched: dict[str, float]) -> None:
        """Advance what the changes to ``touched`` (job id -> when) imply; nothing by default."""

    def _retire(self, conn: Conn, cutoff: float, now: float) -> None:
        """Before retention purges what ended before ``cutoff``: give up what must be undone
        first (a failed split's intermediates); nothing by default."""

    def _settle_touched(self, conn: Conn) -> None:
        """Settle until a round touches nothing new; a loop past ``SETTLE_ROUNDS`` is a bug."""
        for _ in range(SETTLE_ROUNDS):
            touched, _deferred.touched = _deferred.touched, {}
            if not touched:
                return
            self._settle(conn, touched)
        raise RuntimeError(f"settling did not converge in {SETTLE_ROUNDS} rounds")

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
        _deferred.lines, _deferred.touched = [], {}
        try:
            with self._translated(), self._transaction(durable) as conn:
                yield conn
                self._settle_touched(conn)
            self._note_failure(None)
            for level, args, extra in _deferred.lines:
                log.log(level, *args, extra=extra)
        finally:
            _deferred.lines, _deferred.touched = [], {}

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
