"""``batch()``: many lifecycle changes as savepoints of one transaction, on SQLite and PostgreSQL.

Each inner ``_tx`` keeps its own meaning (its refusal undoes only itself, its log lines are
written only if it stays, its settling runs before it is released); the batch commits once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from ffrtmp.master.store import transactions
from ffrtmp.master.store.errors import RecordNotFound, StateConflict
from ffrtmp.master.store.sqlite import SqliteStore
from ffrtmp.master.store.sqlstore import SqlStore

SPEC = {"input": "store:///in/a.mp4", "outputs": [{"url": "store:///out/a.mp4", "preset": "copy"}]}


def _submit(store: SqlStore, now: float = 1000.0) -> str:
    job = store.submit_job(SPEC, queue="default", priority="medium", capabilities=[], intent=None,
                           split_base=None, now=now)
    return str(job["id"])


def _duty(store: SqlStore, name: str, *, durable: bool = True) -> None:
    with store._tx(durable=durable) as conn:
        conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)", (name,))


def _duties_seen_elsewhere(store: SqlStore) -> set[str]:
    """What another thread (its own connection, outside the batch) reads."""
    seen: set[str] = set()

    def read() -> None:
        seen.update(r[0] for r in store._read().execute("SELECT name FROM duties").fetchall())

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return seen


def test_the_changes_of_a_batch_commit_together_when_it_ends(store: SqlStore) -> None:
    with store.batch():
        _duty(store, "one")
        _duty(store, "two", durable=False)
        assert store._read().execute("SELECT COUNT(*) FROM duties").fetchone()[0] == 2  # its own
        assert _duties_seen_elsewhere(store) == set()
    assert _duties_seen_elsewhere(store) == {"one", "two"}


def test_a_refusal_undoes_only_its_own_change(store: SqlStore) -> None:
    with store.batch():
        first = _submit(store)
        with pytest.raises(RecordNotFound):
            store.cancel_job("job-doesnotexist")
        with pytest.raises(StateConflict), store._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES ('undone', 0)")
            raise StateConflict("taken", "refused after writing")
        second = _submit(store)
    assert store.get_job(first)["state"] == "queued"
    assert store.get_job(second)["state"] == "queued"
    assert _duties_seen_elsewhere(store) == set()


def test_an_error_outside_every_savepoint_undoes_the_whole_batch(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.batch():
        _duty(store, "one")
        raise RuntimeError("the caller gave up")
    assert _duties_seen_elsewhere(store) == set()
    _duty(store, "after")  # the thread's next transaction is a transaction of its own
    assert _duties_seen_elsewhere(store) == {"after"}


def test_log_lines_are_written_after_the_commit_and_only_for_changes_that_stay(
        store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ffrtmp.master.store")

    def noted(line: str, *, fail: bool = False) -> None:
        with store._tx():
            transactions.after_commit(logging.INFO, "%s", line)
            if fail:
                raise StateConflict("taken", line)

    with store.batch():
        noted("kept one")
        with pytest.raises(StateConflict):
            noted("dropped", fail=True)
        noted("kept two")
        assert [r.getMessage() for r in caplog.records] == []
    assert [r.getMessage() for r in caplog.records] == ["kept one", "kept two"]


class _Settled(Exception):
    pass


def test_settling_runs_inside_each_savepoint_before_it_is_released(store: SqlStore,
                                                                   monkeypatch: Any) -> None:
    settled: list[tuple[dict[str, float], int]] = []

    def settle(conn: Any, touched: dict[str, float]) -> None:
        # what the savepoint wrote is visible here: settling is part of it
        count = conn.execute("SELECT COUNT(*) FROM duties").fetchone()[0]
        settled.append((touched, count))

    monkeypatch.setattr(store, "_settle", settle)

    def touching(job_id: str, name: str, *, fail: bool = False) -> None:
        with store._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)", (name,))
            transactions.touch(job_id, 5.0)
            if fail:
                raise StateConflict("taken", "refused")

    with store.batch():
        touching("job-a", "one")
        with pytest.raises(StateConflict):
            touching("job-b", "two", fail=True)
        touching("job-c", "three")
        assert settled == [({"job-a": 5.0}, 1), ({"job-c": 5.0}, 2)]
    assert settled == [({"job-a": 5.0}, 1), ({"job-c": 5.0}, 2)]  # nothing left for the commit


def test_a_batch_is_durable_if_any_of_its_transactions_is(store: SqlStore) -> None:
    with store.batch():
        assert not transactions.open_durable()
        _duty(store, "claim-like", durable=False)
        assert not transactions.open_durable()
        with pytest.raises(StateConflict), store._tx():
            raise StateConflict("taken", "a refused durable change needs no disk")
        assert not transactions.open_durable()
        _duty(store, "start-like")
        assert transactions.open_durable()


def test_a_batch_inside_a_batch_is_part_of_it(store: SqlStore) -> None:
    with store.batch():
        with store.batch():
            _duty(store, "inner")
        assert _duties_seen_elsewhere(store) == set()
    assert _duties_seen_elsewhere(store) == {"inner"}


def test_a_transaction_inside_a_transaction_is_a_savepoint_of_it(store: SqlStore) -> None:
    with store._tx() as conn:
        conn.execute("INSERT INTO duties (name, next_run_at) VALUES ('outer', 0)")
        with pytest.raises(StateConflict), store._tx() as inner:
            inner.execute("INSERT INTO duties (name, next_run_at) VALUES ('inner', 0)")
            raise StateConflict("taken", "refused")
    assert _duties_seen_elsewhere(store) == {"outer"}


def _duty_items(store: SqlStore, refuse: str, *, after_writing: bool) -> list[str]:
    """``_each`` over three duties, ``refuse`` refused before or after its INSERT; the names
    ``one`` was called with, in order."""
    calls: list[str] = []

    def one(name: str) -> dict[str, Any]:
        calls.append(name)
        with store._tx() as conn:
            if name == refuse and not after_writing:
                raise StateConflict("taken", f"{name} refused before writing")
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, 0)", (name,))
            transactions.after_commit(logging.INFO, "duty %s", name)
            if name == refuse:
                raise StateConflict("taken", f"{name} refused after writing")
        return {"name": name}

    outcomes = store._each(["a", "b", "c"], one)
    assert [o if isinstance(o, dict) else o.code for o in outcomes] == [
        {"name": "a"}, "taken", {"name": "c"}]
    return calls


@pytest.mark.parametrize("after_writing", [False, True], ids=["before", "after"])
def test_an_item_refused_before_or_after_it_wrote_is_undone_alone(
        store: SqlStore, caplog: pytest.LogCaptureFixture, after_writing: bool) -> None:
    """Items run without a savepoint each where the driver counts changed rows; a refusal
    that came after its item wrote runs the batch again, each item in a savepoint."""
    caplog.set_level(logging.INFO, logger="ffrtmp.master.store")
    calls = _duty_items(store, "b", after_writing=after_writing)
    assert _duties_seen_elsewhere(store) == {"a", "c"}
    assert [r.getMessage() for r in caplog.records] == ["duty a", "duty c"]  # once each
    if not after_writing:
        assert calls == ["a", "b", "c"]  # nothing to undo: never run again
    elif isinstance(store, SqliteStore):  # light: b wrote, so the batch ran again from a
        assert calls == ["a", "b", "a", "b", "c"]
    else:  # PostgreSQL's driver counts no changed rows: a savepoint per item from the start
        assert calls == ["a", "b", "c"]


def test_a_batch_inside_a_transaction_keeps_a_savepoint_per_item(store: SqlStore) -> None:
    """Inside an open transaction the batch cannot be undone alone, so its items are not light."""
    with store.batch():
        _duty(store, "outer")
        calls = _duty_items(store, "b", after_writing=True)
    assert calls == ["a", "b", "c"]
    assert _duties_seen_elsewhere(store) == {"outer", "a", "c"}
