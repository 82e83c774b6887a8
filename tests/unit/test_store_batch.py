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
