"""SQLite's group commit: threads' transactions share one commit and one fsync, each returns
only after the commit that holds its change, and every wait is bounded (``store_busy``).

Groups are formed on purpose here: each member's body waits until the next writer queues
behind it, so the members of one group are known without relying on timing.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.master.store import writer as writer_module
from ffrtmp.master.store.errors import StateConflict, StoreUnavailable
from ffrtmp.master.store.sqlite import SqliteStore
from tests.processes import wait_until

Body = Callable[[sqlite3.Connection], None]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "master.db"), busy_timeout_ms=2000)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fsync the writer itself makes (SQLite's own are not counted: it commits NORMAL)."""
    seen: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(writer_module.os, "fdatasync", lambda fd: (seen.append(fd), real(fd))[1])
    return seen


@pytest.fixture
def groups(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of members of each group the writer commits."""
    sizes: list[int] = []
    real = writer_module.GroupWriter._commit

    def commit(self: writer_module.GroupWriter, group: Any) -> None:
        sizes.append(group.members)
        real(self, group)

    monkeypatch.setattr(writer_module.GroupWriter, "_commit", commit)
    return sizes


def names(store: SqliteStore) -> set[str]:
    """What a fresh connection of another program reads: only what was committed."""
    conn = sqlite3.connect(store.path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM duties")}
    finally:
        conn.close()


def insert(name: str) -> Body:
    return lambda conn: conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)", (name,))


def in_one_group(store: SqliteStore, bodies: list[Body], *,
                 durable: bool = True) -> list[BaseException | None]:
    """Run each body as its own thread's transaction, chained so they share one group: each
    body waits until the next writer queues behind it. Returns what each raised."""
    writer = store._writer()
    outcomes: list[BaseException | None] = [None] * len(bodies)
    running = [threading.Event() for _ in bodies]

    def member(i: int) -> None:
        try:
            with store._tx(durable=durable) as conn:
                running[i].set()
                if i + 1 < len(bodies):
                    wait_until(lambda: writer._waiting >= 1, 10, "the next writer to queue",
                               interval=0.001)
                bodies[i](conn)
        except BaseException as exc:  # reported to the test
            outcomes[i] = exc
        finally:
            running[i].set()

    threads = []
    for i in range(len(bodies)):
        threads.append(threading.Thread(target=member, args=(i,)))
        threads[-1].start()
        running[i].wait(10)
    for thread in threads:
        thread.join(10)
    return outcomes


def test_every_writer_returns_after_the_commit_that_holds_its_change(store: SqliteStore) -> None:
    missing: list[str] = []

    def writes(t: int) -> None:
        for i in range(20):
            name = f"w{t}-{i}"
            with store._tx() as conn:
                insert(name)(conn)
            if name not in names(store):
                missing.append(name)

    threads = [threading.Thread(target=writes, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert missing == []
    assert len(names(store)) == 120


def test_the_writers_of_one_group_share_one_commit_and_one_fsync(
        store: SqliteStore, syncs: list[int], groups: list[int]) -> None:
    outcomes = in_one_group(store, [insert(f"m{i}") for i in range(4)])
    assert outcomes == [None] * 4
    assert groups == [4]
    assert len(syncs) == 1
    assert names(store) == {"m0", "m1", "m2", "m3"}


def test_a_group_of_transactions_that_may_be_lost_makes_no_fsync(
        store: SqliteStore, syncs: list[int], groups: list[int]) -> None:
    assert in_one_group(store, [insert(f"m{i}") for i in range(3)], durable=False) == [None] * 3
    assert groups == [3] and syncs == []
    with store._tx(durable=False) as conn:
        insert("alone")(conn)
    assert syncs == []
    with store._tx() as conn:
        insert("durable")(conn)
    assert len(syncs) == 1


def test_a_refused_member_undoes_only_its_own_change(store: SqliteStore, groups: list[int]) -> None:
    def refused(conn: sqlite3.Connection) -> None:
        insert("refused")(conn)
        raise StateConflict("taken", "refused after writing")

    outcomes = in_one_group(store, [insert("a"), refused, insert("c")])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], StateConflict)
    assert groups == [3]
    assert names(store) == {"a", "c"}


def test_a_group_that_cannot_commit_fails_every_member(store: SqliteStore, groups: list[int]) -> None:
    def drops_the_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # what SQLite does itself after some full-disk and I/O errors

    outcomes = in_one_group(store, [insert("a"), insert("b"), drops_the_transaction])
    assert all(isinstance(o, StoreUnavailable) for o in outcomes[:2]), outcomes
    assert outcomes[2] is not None
    assert names(store) == set()
    with store._tx() as conn:  # the next group starts afresh
        insert("after")(conn)
    assert names(store) == {"after"}


def test_a_group_commits_at_its_cap_while_writers_still_wait(
        store: SqliteStore, groups: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "GROUP_MEMBERS", 2)
    assert in_one_group(store, [insert(f"m{i}") for i in range(5)]) == [None] * 5
    assert groups == [2, 2, 1]
    assert len(names(store)) == 5


def test_a_writer_that_holds_the_connection_too_long_makes_the_others_busy(
        store: SqliteStore) -> None:
    answered = threading.Event()
    holder = threading.Thread(target=lambda: in_one_group(store, [lambda conn: answered.wait(30)]))
    holder.start()
    wait_until(lambda: store._writer()._busy, 10, "the holder to take the writer")
    with pytest.raises(StoreUnavailable) as busy, store._tx() as conn:
        insert("never")(conn)
    answered.set()
    holder.join(30)
    assert busy.value.code == "store_busy"
    assert "never" not in names(store)


def test_another_process_holding_the_write_lock_makes_writes_busy_until_it_lets_go(
        tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "master.db"), busy_timeout_ms=300)
    store.migrate()
    other = os.open(store.path + "-writer.lock", os.O_RDONLY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(StoreUnavailable) as busy, store._tx() as conn:
            insert("refused")(conn)
        assert busy.value.code == "store_busy"
        fcntl.flock(other, fcntl.LOCK_UN)
        # the writer's abandoned wait takes the lock and drops it at once: nobody is left out

        def lockable() -> bool:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other, fcntl.LOCK_UN)
            return True

        wait_until(lockable, 10, "the write lock to be free")
        with store._tx() as conn:
            insert("accepted")(conn)
        assert names(store) == {"accepted"}
    finally:
        os.close(other)
        store.close()


WRITER = """
import sys, threading
from ffrtmp.master.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
def run(t):
    for i in range(25):
        with store._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)",
                         (f"{sys.argv[2]}-{t}-{i}",))
threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_two_processes_write_at_once_without_a_refusal_or_a_loss(store: SqliteStore) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, store.path, tag],
                              stderr=subprocess.PIPE) for tag in ("p", "q")]
    errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert len(names(store)) == 200
