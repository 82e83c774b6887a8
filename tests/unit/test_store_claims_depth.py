"""Claims at queue depth, on SQLite and PostgreSQL: dispatch order and capability matching
hold exactly, a job a node cannot run never blocks the rest, a claim that finds nothing
takes no write lock, and every claim query is an index seek (``EXPLAIN QUERY PLAN``).
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.contract import PRIORITY_RANK, QUEUE_RANK, Priority, Queue, Step
from ffrtmp.master.store import claims
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Store
from ffrtmp.master.store.sqlite import SqliteStore
from tests.conftest import postgres_schema_url
from tests.unit.test_store_split import Farm

CAPS = ([], ["libx264"], ["aac", "libx264"], ["h264_nvenc"], ["libsvtav1"], ["aac"])
RUNS = ["aac", "libx264"]  # what the test node has: CAPS[0..2] and CAPS[5]


def _node(store: Store, name: str, encoders: list[str], slots: int = 1000) -> str:
    node, _, _ = store.register_node(name=name, slots=slots, encoders=encoders, hwaccels=[],
                                     labels={}, ffmpeg_version="7", agent_version="1", live_s=30,
                                     now=1000.0)
    return str(node["id"])


def _submit(store: Store, rng: random.Random, n: int, caps: tuple[list[str], ...] = CAPS,
            ) -> list[tuple[tuple[int, int, int], str, list[str]]]:
    """``n`` jobs of random queue, priority and capabilities; (order key, id, capabilities)."""
    made = []
    for _ in range(n):
        queue, priority = rng.choice(list(Queue)), rng.choice(list(Priority))
        need = rng.choice(caps)
        job = store.submit_job({"input": "x"}, queue=queue, priority=priority, capabilities=need,
                               intent=None, now=1000.0)
        made.append(((QUEUE_RANK[queue], PRIORITY_RANK[priority], job["seq"]), job["id"], need))
    return made


def test_claims_follow_dispatch_order_over_jobs_the_node_cannot_run(store: Store) -> None:
    rng = random.Random(11)
    made = _submit(store, rng, 600)
    node = _node(store, "cpu", RUNS)
    expected = [job_id for _, job_id, need in sorted(made) if set(need) <= set(RUNS)]
    got: list[str] = []
    for slots in itertools.cycle((1, 7, 3, 50)):
        batch = store.claim(node, slots, lease_s=60, now=1001.0)
        if not batch:
            break
        assert len(batch) <= slots
        got += [a.job_id for a in batch]
    assert got == expected
    assert store.counts()["jobs"]["queued"] == len(made) - len(expected)


def test_a_node_that_can_run_nothing_queued_claims_nothing(store: Store) -> None:
    _submit(store, random.Random(1), 200, caps=(["h264_nvenc"], ["libsvtav1"]))
    assert store.claim(_node(store, "cpu", RUNS), 8, lease_s=60) == []


def test_a_split_job_is_never_claimed_however_deep_the_queue(store: Store) -> None:
    farm = Farm(store)
    parents = [farm.submit() for _ in range(30)]
    claimed = farm.claim(slots=1000)
    plans = {farm.of(p, Step.PLAN)[0]["id"] for p in parents}
    assert set(claimed) == plans


def test_a_pick_another_claim_took_first_is_picked_again(store: Store, database: str) -> None:
    """Two claimers (two processes, or two masters): the one that confirms later passes over
    the job the other took between its pick and its confirmation, and takes the next."""
    made = _submit(store, random.Random(5), 3, caps=([],))
    first, second = (job_id for _, job_id, _ in sorted(made)[:2])
    mine, theirs = _node(store, "mine", RUNS), _node(store, "theirs", RUNS)
    other = open_store(database)
    real_pick = store._pick_for  # type: ignore[attr-defined]
    raced = []

    def pick_then_lose(node_id: str, slots: int, *rest: Any) -> Any:
        picked = real_pick(node_id, slots, *rest)
        if not raced:
            raced.append([a.job_id for a in other.claim(theirs, 1, lease_s=60)])
        return picked

    store._pick_for = pick_then_lose  # type: ignore[attr-defined]
    try:
        got = store.claim(mine, 1, lease_s=60)
    finally:
        other.close()
    assert raced == [[first]]
    assert [a.job_id for a in got] == [second]
    assert store.get_job(second)["attempt"] == 1 and store.get_job(first)["node_id"] == theirs


def test_concurrent_claimers_never_share_a_job(store: Store, database: str) -> None:
    made = _submit(store, random.Random(9), 300, caps=([], ["libx264"]))
    nodes = [_node(store, f"n{i}", RUNS) for i in range(6)]
    got: list[list[str]] = [[] for _ in nodes]

    def drain(i: int) -> None:
        mine = open_store(database)
        try:
            while batch := mine.claim(nodes[i], 4, lease_s=60):
                got[i] += [a.job_id for a in batch]
        finally:
            mine.close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    claimed = [job_id for ids in got for job_id in ids]
    assert sorted(claimed) == sorted(job_id for _, job_id, _ in made)  # each exactly once


def test_an_empty_claim_takes_no_write_lock(tmp_path: Path) -> None:
    """While another process holds SQLite's write lock, a node with nothing it can run, or
    no free slot, is still answered (at once: it never queues for the lock)."""
    path = tmp_path / "master.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    _submit(store, random.Random(2), 50, caps=(["h264_nvenc"],))
    cpu, full = _node(store, "cpu", RUNS), _node(store, "full", ["h264_nvenc"], slots=1)
    assert len(store.claim(full, 1, lease_s=60)) == 1
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert store.claim(cpu, 4, lease_s=60) == []
        assert store.claim(full, 4, lease_s=60) == []
        assert store.queue_marker()[0] > 0
        assert store.counts()["jobs"] == {"queued": 49, "assigned": 1}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


@pytest.mark.parametrize("analyzed", [False, True])
def test_every_claim_query_seeks_an_index(tmp_path: Path, analyzed: bool) -> None:
    """No claim query scans a table or sorts in a temporary b-tree, whatever the statistics."""
    store = open_store(f"sqlite:///{tmp_path / 'master.db'}")
    store.migrate()
    _submit(store, random.Random(3), 300)
    conn = sqlite3.connect(tmp_path / "master.db")
    if analyzed:
        conn.execute("ANALYZE")
    hint = SqliteStore.CLAIM_INDEX
    queries = {claims.NEXT_SET.format(hint=hint): ("",),
               claims.HEADS.format(hint=hint): ('["libx264"]', 8)}
    for sql, params in queries.items():
        plan = _plan(conn, sql, params)
        assert all(step.startswith("SEARCH jobs USING") and "jobs_queued" in step
                   for step in plan), (sql, plan)
        assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)
    # a claim that names its claim id first asks whether it was claimed before (a replay)
    assert _plan(conn, claims.CLAIMED_WITH, ("n-1", "claim-id-1")) == [
        "SEARCH attempts USING COVERING INDEX attempts_claim (node_id=? AND claim_id=?)"]
    conn.close()
    store.close()


def test_postgresql_plans_every_claim_query_as_an_index_seek(postgres_server: str) -> None:
    """At depth (many finished jobs, many queued, statistics fresh), no claim query reads the
    table sequentially or sorts: each walks ``jobs_queued``."""
    store = open_store(postgres_schema_url(postgres_server))
    store.migrate()
    conn = store._read()  # type: ignore[attr-defined]
    conn.execute("INSERT INTO jobs (id, state, spec, queue_rank, priority_rank, capabilities,"
                 " created_at, updated_at) SELECT 'j' || i, CASE WHEN i % 10 = 0 THEN 'queued'"
                 " ELSE 'succeeded' END, '{}', i % 3, i % 3, CASE WHEN i % 20 = 0 THEN"
                 " '[\"h264_nvenc\"]' ELSE '[\"libx264\"]' END, 0, 0"
                 " FROM generate_series(1, 20000) AS i")
    conn.execute("ANALYZE jobs")
    for sql, params in ((claims.NEXT_SET.format(hint=""), ("",)),
                        (claims.HEADS.format(hint="") + " FOR UPDATE SKIP LOCKED",
                         ('["libx264"]', 8))):
        plan = [row[0] for row in conn.execute("EXPLAIN " + sql, params)]
        assert any("jobs_queued" in line for line in plan), plan
        assert not any("Seq Scan" in line or "Sort" in line for line in plan), plan
    conn.execute("INSERT INTO attempts (job_id, attempt, node_id, token_hash, state, assigned_at,"
                 " lease_expires_at, claim_id) SELECT 'j' || i, 1, 'n-' || (i % 50), 't' || i,"
                 " 'succeeded', 0, 0, CASE WHEN i % 2 = 0 THEN 'c' || i END"
                 " FROM generate_series(1, 20000) AS i")
    conn.execute("ANALYZE attempts")
    plan = [row[0] for row in conn.execute("EXPLAIN " + claims.CLAIMED_WITH, ("n-1", "c-1"))]
    assert any("attempts_claim" in line for line in plan), plan
    assert not any("Seq Scan" in line for line in plan), plan
    store.close()
