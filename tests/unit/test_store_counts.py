"""The job counters and the queue version, on SQLite and PostgreSQL: after any mix of
lifecycle changes the counters say what counting the jobs table says, and the queue version
moves whenever a job becomes queued.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from ffrtmp import jobspec
from ffrtmp.contract import Step
from ffrtmp.jobspec import split
from ffrtmp.master.store.errors import StateConflict
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Assignment, Store, Submission
from tests.unit.test_store_split import MEDIA_ROOTS, OK, PLAN, SUBMITTED

LEASE_S = 60.0


def truth(store: Store) -> dict[str, int]:
    """What the counters stand for: every job but a split job itself, by state."""
    rows = store._read().execute(  # type: ignore[attr-defined]
        "SELECT state, COUNT(*) FROM jobs WHERE step <> ? GROUP BY state", (Step.SPLIT.value,))
    return {row[0]: int(row[1]) for row in rows}


def queued_ever(store: Store) -> int:
    """How often a job (not a split job itself) became queued, from the history."""
    row = store._read().execute(  # type: ignore[attr-defined]
        "SELECT COUNT(*) FROM transitions t JOIN jobs j ON j.id = t.job_id"
        " WHERE t.to_state = 'queued' AND j.step <> 'split'").fetchone()
    return int(row[0])


class Life:
    """A store driven at random through every lifecycle change, as the API and duties do."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store, self.rng, self.clock = store, random.Random(seed), 1000.0
        self.nodes = [self._node(f"node-{i}") for i in range(3)]
        self.held: dict[str, tuple[str, Assignment]] = {}  # job id -> (node, assignment)
        self.started: set[str] = set()

    def now(self, step: float = 1.0) -> float:
        self.clock += step
        return self.clock

    def _node(self, name: str) -> str:
        node, _, _ = self.store.register_node(
            name=name, slots=6, encoders=["libx264", "aac"], hwaccels=[], labels={},
            ffmpeg_version="7", agent_version="1", live_s=30, now=self.now())
        return str(node["id"])

    def submit(self) -> None:
        need = self.rng.choice(([], ["libx264"], ["h264_nvenc"]))
        if self.rng.random() < 0.3:
            items = [Submission({"input": "x"}, "default", "medium", need, None)] * 3
            self.store.submit_jobs(items, now=self.now())  # type: ignore[call-arg]
            return
        self.store.submit_job({"input": "x"}, queue="default", priority="medium",
                              capabilities=need, intent=None, now=self.now())

    def submit_split(self) -> None:
        spec = jobspec.parse(SUBMITTED, MEDIA_ROOTS, submitted=True)
        self.store.submit_job(spec.to_dict(), queue=spec.queue, priority=spec.priority,
                              capabilities=spec.capabilities(), intent=spec.intent,
                              split_base=split.workspace_base(spec), now=self.now())

    def claim(self) -> None:
        node = self.rng.choice(self.nodes)
        for a in self.store.claim(node, self.rng.randint(1, 4), lease_s=LEASE_S, now=self.now()):
            self.held[a.job_id] = (node, a)

    def start(self) -> None:
        chosen = self._some(set(self.held) - self.started)
        if self.rng.random() < 0.5:  # a batch: one commit, refused items undone alone
            for node in self.nodes:
                mine = [(j, self.held[j][1].attempt_token) for j in chosen if self.held[j][0] == node]
                self.store.start_many(node, mine, now=self.now())  # type: ignore[call-arg]
            self.started.update(chosen)
            return
        for job_id in chosen:
            node, a = self.held[job_id]
            self._refused(self.store.start, job_id, node, a.attempt_token, now=self.now())
            self.started.add(job_id)

    def result(self) -> None:
        for job_id in self._some(set(self.held)):
            node, a = self.held.pop(job_id)
            self.started.discard(job_id)
            outcome = self.rng.choice(("succeeded", "succeeded", "failed"))
            result = {**OK, "outcome": outcome}
            step = self.store.get_job(job_id, with_history=False)["step"]
            if step == Step.PLAN and outcome == "succeeded":
                result["plan"] = PLAN
            if outcome == "failed":
                result.update(exit_code=1, reason="ffmpeg_error")
            self._refused(self.store.record_result, job_id, node, a.attempt_token, result,
                          now=self.now())

    def cancel(self) -> None:
        for job in self._some(self._jobs()):
            self._refused(self.store.cancel_job, job["id"], now=self.now())

    def retry(self) -> None:
        for job in self._some(self._jobs()):
            self._refused(self.store.retry_job, job["id"], now=self.now())

    def expire(self) -> None:
        self.store.expire_leases(now=self.now(LEASE_S + 1))

    def lose(self) -> None:
        """Every node falls silent (its running jobs are lost), or reconciles them away."""
        if self.rng.random() < 0.5:
            self.store.mark_offline(30, now=self.now(31))
            return
        node = self.rng.choice(self.nodes)
        for _ in range(2):
            self.store.heartbeat(node, [], unlisted_after_s=0, now=self.now())

    def purge(self) -> None:
        self.store.purge_finished(1, now=self.now(2 * 86400))
        ids = {job["id"] for job in self._jobs(children=True)}
        self.held = {job_id: held for job_id, held in self.held.items() if job_id in ids}

    def _jobs(self, *, children: bool = False) -> list[dict[str, Any]]:
        jobs, _ = self.store.list_jobs(limit=5000, children=children)
        return jobs

    def _some(self, items: Any) -> list[Any]:
        items = sorted(items, key=str)
        return self.rng.sample(items, min(len(items), self.rng.randint(0, 3)))

    @staticmethod
    def _refused(action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``action``; a stale token, a finished job or a split job's part is refused."""
        with contextlib.suppress(StateConflict):
            action(*args, **kwargs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_counters_equal_a_fresh_count_after_any_mix_of_changes(store: Store, seed: int) -> None:
    life = Life(store, seed)
    weights = {life.submit: 6, life.submit_split: 1, life.claim: 6, life.start: 5,
               life.result: 5, life.cancel: 2, life.retry: 2, life.expire: 1, life.lose: 1,
               life.purge: 1}
    ops, marker = list(weights), store.queue_marker()
    for _ in range(150):
        op = life.rng.choices(ops, weights=list(weights.values()))[0]
        op()
        assert store.counts()["jobs"] == truth(store), op.__name__
        moved, marker = store.queue_marker() != marker, store.queue_marker()
        if op in (life.submit, life.submit_split):
            assert moved, op.__name__
    assert store.queue_marker()[0] >= queued_ever(store)  # purged jobs took history along


def test_the_queue_version_moves_for_each_way_a_job_becomes_queued(store: Store) -> None:
    life = Life(store, 7)
    versions = [store.queue_marker()]

    def moved() -> bool:
        versions.append(store.queue_marker())
        return versions[-1] != versions[-2]

    store.submit_job({"input": "x"}, queue="default", priority="medium", capabilities=[],
                     intent=None, now=life.now())
    assert moved()
    while not life.held:
        life.claim()
    assert not moved()  # a claim takes from the queue: nothing new for a waiting claim
    life.expire()  # the lease ran out: back in the queue
    assert moved()
    life.claim()
    (job_id,) = life.held
    life.held.pop(job_id)
    store.cancel_job(job_id, now=life.now())
    assert not moved()
    store.retry_job(job_id, now=life.now())
    assert moved()


def test_migration_4_counts_the_jobs_a_store_already_holds(database: str) -> None:
    """A store made before the counters existed starts them from its rows, and claims by the
    new index at once."""
    store = open_store(database)
    store.MIGRATIONS = type(store).MIGRATIONS[:3]  # type: ignore[misc]  # the store as it was
    assert store.migrate() == 3
    rows = [("a", "queued", ""), ("b", "queued", ""), ("c", "succeeded", ""), ("p", "running", "split"),
            ("p1", "running", "plan"), ("d", "failed", "")]
    for job_id, state, step in rows:
        store._read().execute(  # type: ignore[attr-defined]
            "INSERT INTO jobs (id, state, spec, queue_rank, priority_rank, capabilities, step,"
            " created_at, updated_at) VALUES (?, ?, '{}', 1, 1, '[]', ?, 0, 0)",
            (job_id, state, step))
    del store.MIGRATIONS  # type: ignore[misc]
    assert store.migrate() == len(type(store).MIGRATIONS)
    assert store.counts()["jobs"] == truth(store) == {"queued": 2, "succeeded": 1, "running": 1,
                                                      "failed": 1}
    node, _, _ = store.register_node(name="n", slots=4, encoders=[], hwaccels=[], labels={},
                                     ffmpeg_version="7", agent_version="1", live_s=30)
    assert [a.job_id for a in store.claim(node["id"], 4, lease_s=60)] == ["a", "b"]
    assert store.counts()["jobs"] == truth(store)
    store.close()


def test_retention_folds_every_writers_counters_into_one_row(database: str) -> None:
    """Each connection counts in rows of its own; the hourly retention folds them together,
    and what the counters and the queue version say does not change."""
    stores = [open_store(database) for _ in range(3)]
    stores[0].migrate()
    for store in stores:
        store.submit_job({"input": "x"}, queue="default", priority="medium", capabilities=[],
                         intent=None)
    counts, marker = stores[0].counts(), stores[0].queue_marker()
    stores[0].purge_finished(1)
    shards = {int(row[0]) for row in stores[0]._read().execute(  # type: ignore[attr-defined]
        "SELECT DISTINCT shard FROM job_counts")}
    assert shards == {0}
    assert stores[0].counts() == counts and stores[0].queue_marker() == marker
    assert counts["jobs"] == truth(stores[0]) == {"queued": 3}
    for store in stores:
        store.close()


def test_a_savepoint_rolled_back_takes_its_counts_and_observations_with_it(store: Store) -> None:
    """The counters and histograms are tallied per transaction and written before it commits
    (``transactions.tally``): an item of a batch that fails after changing a job counts nothing."""
    life = Life(store, 7)
    for _ in range(3):
        life.submit()
    life.claim()
    job_id, (node, a) = sorted(life.held.items())[0]
    store.start(job_id, node, a.attempt_token, now=life.now())  # type: ignore[call-arg]
    before, histograms = store.counts()["jobs"], store.counts()["histograms"]

    class Undo(StateConflict):
        pass

    with store.batch():  # type: ignore[attr-defined]
        with contextlib.suppress(Undo), store._tx():  # type: ignore[attr-defined]
            store.record_result(job_id, node, a.attempt_token, OK, now=life.now())  # type: ignore[call-arg]
            raise Undo("stale_attempt", "rolled back after its result was recorded")
        store.submit_job({"input": "x"}, queue="default", priority="medium", capabilities=[],
                         intent=None)
    after = store.counts()
    assert after["jobs"] == {**before, "queued": before.get("queued", 0) + 1} == truth(store)
    assert after["histograms"] == histograms
    store.record_result(job_id, node, a.attempt_token, OK, now=life.now())  # type: ignore[call-arg]
    done = store.counts()
    assert done["jobs"] == truth(store) and done["jobs"]["succeeded"] == 1
    assert all(h["count"] == 1 for h in done["histograms"].values())
