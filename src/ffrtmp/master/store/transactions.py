"""Transactions for every SQL dialect: driver errors translated, log lines written after commit.

Each dialect supplies its connections (``_conn``) and one transaction (``_transaction``);
everything else about running a statement safely is here, once. Every job a transaction
changes is noted (``touch``), and before it commits ``_settle`` advances what those changes
imply (a split job derives from its children), so the consequence commits with its cause.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ffrtmp.master.store.errors import StoreError, StoreUnavailable
from ffrtmp.master.store.rows import Conn

# The one logger of the store: its lines read "ffrtmp.master.store: job ...", whichever module.
log = logging.getLogger("ffrtmp.master.store")

_deferred = threading.local()
T = TypeVar("T")
# writes a transaction's tally (``tally``) in as few statements as it can
Flush = Callable[[Conn, dict[Any, float]], None]
SETTLE_ROUNDS = 8  # settling a child settles its parent, which may add children: never deeper


def touch(job_id: str, now: float) -> None:
    """Note that the transaction running on this thread changed ``job_id`` (at ``now``)."""
    _deferred.touched[job_id] = max(now, _deferred.touched.get(job_id, now))


def note_link(job_id: str, split_id: str | None) -> None:
    """Remember which split job a change to ``job_id`` settles (itself, its parent, or none)
    for the transaction on this thread, so that settling reads nothing for it. A job's link
    never changes, so a savepoint rolled back leaves it."""
    _deferred.open.links[job_id] = split_id


def known_links() -> dict[str, str | None]:
    """The links noted in the transaction on this thread; settling adds what it reads."""
    links: dict[str, str | None] = _deferred.open.links
    return links


def tally(write: Flush, key: Hashable, amount: float) -> None:
    """Add ``amount`` to ``key`` in this transaction's tally for ``write``, which writes the
    whole tally once, just before the transaction commits: counters that many changes of one
    transaction move cost one statement, not one each. A savepoint rolled back drops its part."""
    sums = _deferred.open.sums.setdefault(write, {})
    sums[key] = sums.get(key, 0) + amount


def after_commit(level: int, *args: Any, extra: dict[str, Any] | None = None) -> None:
    """Log once the transaction running on this thread commits (never for one rolled back)."""
    _deferred.open.lines.append((level, args, extra))


@dataclass(eq=False)
class _Open:
    """The transaction open on a thread: what its savepoints add to it."""

    durable: bool
    conn: Any = None
    lines: list[tuple[int, tuple[Any, ...], dict[str, Any] | None]] = field(default_factory=list)
    depth: int = 0
    spoiled: StoreUnavailable | None = None
    sums: dict[Flush, dict[Any, float]] = field(default_factory=dict)
    links: dict[str, str | None] = field(default_factory=dict)  # see ``note_link``
    light: bool = False  # its items run without SQL savepoints (see ``SqlCore._each``)


class _Redo(Exception):
    """An item of a light batch was refused after it had written: run the batch again."""


def open_durable() -> bool:
    """Whether the transaction open on this thread must reach the disk when it commits."""
    tx: _Open | None = getattr(_deferred, "open", None)
    return tx is not None and tx.durable


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

    def _changes(self, conn: Conn) -> int | None:
        """Rows this connection has changed so far, where the driver counts them (None: it
        does not), so that a refused item that changed nothing needs no savepoint undone."""
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
        """This thread's connection for reads; inside a transaction, that transaction's, so a
        read sees what the transaction wrote so far."""
        tx: _Open | None = getattr(_deferred, "open", None)
        if tx is not None:
            conn: Conn = tx.conn
            return conn
        with self._translated():
            return self._conn()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every ``_tx`` this thread enters inside it as a SAVEPOINT of one transaction,
        which commits once on leaving (durable if any of them was): one commit for many items.

        A ``StoreError`` in one ``_tx`` rolls back only its savepoint and propagates; the caller
        may catch it and go on. A ``StoreUnavailable`` spoils the batch: the rest of its ``_tx``
        and the batch itself raise it, since the database may have dropped the whole
        transaction. A batch inside a batch is part of the outer one.
        """
        if getattr(_deferred, "open", None) is not None:
            yield
            return
        with self._outer(durable=False, batch=True):
            yield

    def _each(self, items: Sequence[T],
              one: Callable[[T], dict[str, Any]]) -> list[dict[str, Any] | StoreError]:
        """Run ``one`` per item inside one batch. A store that cannot write now ends the whole
        batch (nothing commits, the caller answers 503 and the sender resends it all).

        An item is refused alone, its changes undone. Where the driver counts changed rows,
        items run without a savepoint each (two statements fewer per item): a refusal almost
        always comes before its item writes anything. One that came after runs the whole batch
        again, undone first, with a savepoint per item."""
        if getattr(_deferred, "open", None) is None:
            with contextlib.suppress(_Redo):
                return self._run_each(items, one, light=True)
        return self._run_each(items, one, light=False)

    def _run_each(self, items: Sequence[T], one: Callable[[T], dict[str, Any]], *,
                  light: bool) -> list[dict[str, Any] | StoreError]:
        outcomes: list[dict[str, Any] | StoreError] = []
        with self.batch():
            tx: _Open = _deferred.open
            tx.light = light and self._changes(tx.conn) is not None
            for item in items:
                try:
                    outcomes.append(one(item))
                except StoreUnavailable:
                    raise
                except StoreError as exc:
                    outcomes.append(exc)
        return outcomes

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[Conn]:
        """One transaction; log lines about it are written after it commits, outside any lock.

        Inside another transaction on this thread (a ``batch``) it is a SAVEPOINT of it. A driver
        error that means "the database cannot write now" leaves as ``StoreUnavailable`` (503
        with a named code), so every write path answers a full, read-only or busy database the
        same way.
        """
        tx: _Open | None = getattr(_deferred, "open", None)
        if tx is not None:
            with self._savepoint(tx, durable) as conn:
                yield conn
            return
        with self._outer(durable=durable, batch=False) as conn:
            yield conn

    @contextmanager
    def _outer(self, *, durable: bool, batch: bool) -> Iterator[Conn]:
        """The thread's transaction: settled before it commits, its lines logged after."""
        tx = _Open(durable=durable)
        _deferred.open, _deferred.touched = tx, {}
        try:
            with self._translated(), self._transaction(durable or batch) as conn:
                tx.conn = conn
                yield conn
                if tx.spoiled is not None:
                    raise tx.spoiled
                self._settle_touched(conn)
                for write, sums in tx.sums.items():
                    write(conn, sums)
            self._note_failure(None)
        finally:
            _deferred.open, _deferred.touched = None, {}
        for level, args, extra in tx.lines:
            log.log(level, *args, extra=extra)

    @contextmanager
    def _savepoint(self, tx: _Open, durable: bool) -> Iterator[Conn]:
        """A nested ``_tx``: its changes, settling and lines go or stay together."""
        if tx.spoiled is not None:
            raise tx.spoiled
        light = tx.light and tx.depth == 0  # an item of ``_each``: no SQL savepoint
        tx.depth += 1
        name = f"ffrtmp_{tx.depth}"
        outer_lines, outer_touched, outer_sums = tx.lines, _deferred.touched, tx.sums
        tx.lines, _deferred.touched, tx.sums = [], {}, {}
        try:
            with self._translated():
                before = self._changes(tx.conn) if light else None
                if not light:
                    tx.conn.execute(f"SAVEPOINT {name}")
                try:
                    yield tx.conn
                    self._settle_touched(tx.conn)
                    if not light:
                        tx.conn.execute(f"RELEASE {name}")
                except BaseException as exc:
                    if not light:
                        self._roll_back_to(tx, name, exc)
                    elif (isinstance(exc, StoreError) and not isinstance(exc, StoreUnavailable)
                          and self._changes(tx.conn) != before):
                        raise _Redo from exc  # only undoing the whole batch undoes this item
                    raise
            outer_lines.extend(tx.lines)
            _add_sums(outer_sums, tx.sums)
            tx.durable = tx.durable or durable
        finally:
            tx.depth -= 1
            tx.lines, _deferred.touched, tx.sums = outer_lines, outer_touched, outer_sums

    def _roll_back_to(self, tx: _Open, name: str, exc: BaseException) -> None:
        """Undo one savepoint. If the database cannot (it dropped the whole transaction, as
        SQLite does after some full-disk and I/O errors), spoil the transaction: nothing more
        runs in it and it does not commit."""
        try:
            tx.conn.execute(f"ROLLBACK TO {name}")
            tx.conn.execute(f"RELEASE {name}")
        except Exception as undo:
            code = self._unavailable_code(exc) if isinstance(exc, Exception) else None
            tx.spoiled = (exc if isinstance(exc, StoreUnavailable)
                          else StoreUnavailable(code, exc) if code is not None
                          else StoreUnavailable("store_unavailable", undo))

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors that mean "the database cannot serve this now" leave as ``StoreUnavailable``."""
        try:
            yield
        except StoreUnavailable as exc:  # raised by the dialect itself (a writer that waited too long)
            self._note_failure(exc.code, exc)
            raise
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


def _add_sums(into: dict[Flush, dict[Any, float]], sums: dict[Flush, dict[Any, float]]) -> None:
    for write, part in sums.items():
        target = into.setdefault(write, {})
        for key, amount in part.items():
            target[key] = target.get(key, 0) + amount
