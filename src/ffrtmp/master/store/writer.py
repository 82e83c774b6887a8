"""SQLite's one writer per process, with group commit, and the lock that orders processes.

SQLite serialises writers and a durable commit costs an fsync of the WAL. Threads that want
to write therefore take turns on one connection: each runs its transaction as a SAVEPOINT of
a transaction that stays open while others wait, and the last of them commits once, so one
fsync covers them all. Nobody returns before the commit that holds its change: "2xx means on
disk" holds for every member. A commit that fails fails every member of its group.

``PRAGMA synchronous`` cannot change inside a transaction, so the writer commits with
``NORMAL`` and, when any member is durable, fsyncs the WAL itself before anyone returns:
the same guarantee as ``FULL`` (the commit frame is on disk), decided at commit time.

Processes (two gunicorn workers, the CLI) order themselves through ``flock`` on a sidecar
file, which wakes a waiter as soon as the holder is done (SQLite's busy handler sleeps in
steps up to 100 ms) and is released by the kernel when a process dies. Every wait is bounded
by the busy timeout: past it, the writer raises ``StoreUnavailable("store_busy")``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ffrtmp.master.store.errors import StoreUnavailable

# A group commits when it has this many members or is this old, even while others wait,
# so a stream of arrivals cannot postpone a commit for ever.
GROUP_MEMBERS = 32
GROUP_AGE_S = 0.02
_MEMBER = "ffrtmp_member"
_OPEN_ERRORS = {errno.EROFS: "store_read_only", errno.ENOSPC: "store_full",
                errno.EDQUOT: "store_full"}


@dataclass(eq=False)
class _Pending:
    """A blocking ``flock`` under way in a helper thread, for a waiter that may give up."""

    done: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False


class FileLock:
    """An exclusive ``flock`` with a timeout, for one process (one open file description).

    ``flock`` itself cannot time out, so a contended acquire blocks in a helper thread while
    the caller waits on an event; a caller that gives up leaves the lock to be dropped as soon
    as the helper gets it, unless another caller has come for it meanwhile.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._mutex = threading.Lock()
        self._pending: _Pending | None = None
        self._finalizer: Callable[[], object] | None = None

    def acquire(self, timeout: float) -> bool:
        fd = self._open()
        with self._mutex:
            pending = self._pending
            if pending is None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pending = self._pending = _Pending()
                    threading.Thread(target=self._wait, args=(fd, pending), daemon=True,
                                     name="ffrtmp-writer-lock").start()
            pending.abandoned = False
        pending.done.wait(max(0.0, timeout))
        with self._mutex:
            if pending.done.is_set():
                self._pending = None
                return True
            pending.abandoned = True
            return False

    def _wait(self, fd: int, pending: _Pending) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with self._mutex:
            if pending.abandoned:
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._pending = None
            else:
                pending.done.set()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        if self._fd is None:
            try:
                # read-only is enough for flock, and does not keep a remount read-only busy
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise StoreUnavailable(_OPEN_ERRORS.get(exc.errno or 0, "store_unavailable"),
                                       exc) from exc
            self._fd = fd
            self._finalizer = weakref.finalize(self, os.close, fd)  # a store dropped unclosed
        return self._fd

    def close(self) -> None:
        self._fd = None
        if self._finalizer is not None:
            self._finalizer()


@dataclass(eq=False)
class _Group:
    """One open SQLite transaction and the members that ran in it."""

    began: float
    members: int = 0
    durable: bool = False
    broken: BaseException | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupWriter:
    """The process's writing connection; callers take turns on it (see the module's text)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], path: str, timeout_s: float,
                 unavailable_code: Callable[[Exception], str | None]) -> None:
        self._connect, self._path, self.timeout_s = connect, path, timeout_s
        self._code = unavailable_code
        self._lock = FileLock(path + "-writer.lock")
        self._cv = threading.Condition()
        self._busy = False  # a member is running on the connection, or its group commits
        self._waiting = 0
        self._group: _Group | None = None
        self._conn: sqlite3.Connection | None = None
        self._sync_wal = False

    @contextlib.contextmanager
    def member(self, durable: Callable[[], bool]) -> Iterator[sqlite3.Connection]:
        """Run the caller's transaction as a member of a group; return once it committed.

        ``durable`` is asked after the body ran (a batch learns it on the way).
        """
        deadline = time.monotonic() + self.timeout_s
        self._enter(deadline)
        try:
            group = self._group or self._begin(deadline)
        except BaseException:
            self._leave()
            raise
        conn = self._savepoint(group)
        failed = None
        try:
            yield conn
            conn.execute(f"RELEASE {_MEMBER}")
            group.durable = group.durable or durable()
        except BaseException as exc:
            failed = exc
            self._undo_member(conn, group, exc)
        self._finish(group, wait=failed is None)
        if failed is not None:
            raise failed
        if group.error is not None:
            raise self._failure(group.error)

    def _savepoint(self, group: _Group) -> sqlite3.Connection:
        """Open this member's savepoint; a failure to do so loses the group (it commits nothing)."""
        conn = self._conn
        assert conn is not None  # noqa: S101 -- _begin opened it
        try:
            conn.execute(f"SAVEPOINT {_MEMBER}")
        except BaseException as exc:
            group.broken = exc
            self._finish(group, wait=False)
            raise
        return conn

    def _enter(self, deadline: float) -> None:
        """Wait for the connection; past the deadline, the store is busy."""
        with self._cv:
            self._waiting += 1
            try:
                free = self._cv.wait_for(lambda: not self._busy, deadline - time.monotonic())
            finally:
                self._waiting -= 1
            if not free:
                raise StoreUnavailable("store_busy", TimeoutError(
                    f"this process's writes queued for {self.timeout_s:g}s"))
            self._busy = True

    def _leave(self) -> None:
        with self._cv:
            self._busy = False
            self._cv.notify()

    def _begin(self, deadline: float) -> _Group:
        """Take the processes' lock, then SQLite's: a new group's transaction."""
        conn = self._connection()
        if not self._lock.acquire(deadline - time.monotonic()):
            raise StoreUnavailable("store_busy", TimeoutError(
                f"another process held the write lock for {self.timeout_s:g}s"))
        try:
            # a program that takes SQLite's lock without ours: wait only what is left
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            conn.execute(f"PRAGMA busy_timeout = {remaining_ms}")
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        self._group = _Group(began=time.monotonic())
        return self._group

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self._connect()
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            # only in WAL mode is a commit frame in the WAL, for the writer to fsync itself
            self._sync_wal = str(mode).lower() == "wal"
            conn.execute(f"PRAGMA synchronous = {'NORMAL' if self._sync_wal else 'FULL'}")
            self._conn = conn
        return self._conn

    def _undo_member(self, conn: sqlite3.Connection, group: _Group, exc: BaseException) -> None:
        """Roll back one member; if SQLite dropped the whole transaction, the group is lost."""
        try:
            conn.execute(f"ROLLBACK TO {_MEMBER}")
            conn.execute(f"RELEASE {_MEMBER}")
        except sqlite3.Error:
            group.broken = exc
        if not conn.in_transaction:
            group.broken = exc

    def _finish(self, group: _Group, *, wait: bool) -> None:
        """Hand the open transaction to the next waiter, or commit it for everyone."""
        with self._cv:
            group.members += 1
            hand_on = (group.broken is None and self._waiting > 0
                       and group.members < GROUP_MEMBERS
                       and time.monotonic() - group.began < GROUP_AGE_S)
            if hand_on:
                self._busy = False
                self._cv.notify()
        if hand_on:
            if wait:
                group.done.wait()
            return
        try:
            self._commit(group)
        finally:
            with self._cv:
                self._group = None
                self._busy = False
                self._cv.notify()
            group.done.set()

    def _commit(self, group: _Group) -> None:
        conn = self._conn
        assert conn is not None  # noqa: S101 -- the group's transaction is on it
        try:
            if group.broken is not None:
                raise group.broken
            conn.execute("COMMIT")
            if group.durable and self._sync_wal:
                self._fsync_wal()
        except BaseException as exc:
            group.error = exc
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        finally:
            self._lock.release()

    def _fsync_wal(self) -> None:
        """What ``synchronous = FULL`` does at a WAL commit: the WAL reaches the disk."""
        fd = os.open(self._path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _failure(self, error: BaseException) -> StoreUnavailable:
        """What each member of a group that did not commit raises."""
        if isinstance(error, StoreUnavailable):
            return StoreUnavailable(error.code, error.__cause__ or error)
        code = self._code(error) if isinstance(error, Exception) else None
        return StoreUnavailable(code or "store_unavailable", error)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._lock.close()
