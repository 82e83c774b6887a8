"""Split jobs in the store, on SQLite and PostgreSQL, driven the way agents drive children.

Every child runs through the store's public methods (claim, start, heartbeat, result); the
parent is never touched directly, so each test shows that it settles in the transaction of
the child's change.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ffrtmp import jobspec
from ffrtmp.contract import JobState, Step
from ffrtmp.jobspec import split
from ffrtmp.master.store.errors import StateConflict
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Assignment, Store
from ffrtmp.master.store.split import SplitMixin
from tests.processes import wait_until

MEDIA_ROOTS = ["/srv/media"]
SUBMITTED = {"input": "store:///in/film.mp4",
             "outputs": [{"url": "store:///out/film-720.mp4", "preset": "h264-720p"},
                         {"url": "store:///out/film-480.mp4", "preset": "h264-480p"}],
             "split": {"segment_s": 10}}
CUTS = [("0.000000", 250, 10.0), ("10.000000", 250, 10.0), ("20.000000", 250, 10.0),
        ("30.000000", 125, 5.0)]
PLAN = {"segments": [{"start_s": s, "frames": f, "duration_s": d} for s, f, d in CUTS],
        "audio": True, "duration_s": 35.0, "frames": 875}
OK = {"outcome": "succeeded", "exit_code": 0, "platform_sla": True,
      "reason": "completed_successfully"}


class Farm:
    """A store, two nodes and a clock; children are run as an agent runs them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = itertools.count(1000)
        self.nodes = [self._node(name) for name in ("node-a", "node-b")]
        self.held: dict[str, tuple[str, Assignment]] = {}  # job id -> (node, assignment)

    def now(self) -> float:
        return float(next(self.clock))

    def _node(self, name: str) -> str:
        node, _, _ = self.store.register_node(
            name=name, slots=64, encoders=["libx264", "aac"], hwaccels=[], labels={},
            ffmpeg_version="7", agent_version="1", live_s=30, now=self.now())
        return str(node["id"])

    def submit(self, body: dict[str, Any] | None = None) -> str:
        spec = jobspec.parse(body or SUBMITTED, MEDIA_ROOTS, submitted=True)
        job = self.store.submit_job(
            spec.to_dict(), queue=spec.queue, priority=spec.priority,
            capabilities=spec.capabilities(), intent=spec.intent,
            split_base=split.workspace_base(spec), now=self.now())
        return str(job["id"])

    def claim(self, node: int = 0, slots: int = 64) -> list[str]:
        """Claim (and confirm the start of) up to ``slots`` queued children, in dispatch order."""
        node_id = self.nodes[node]
        got = self.store.claim(node_id, slots, lease_s=60, now=self.now())
        for a in got:
            self.store.start(a.job_id, node_id, a.attempt_token, now=self.now())
            self.held[a.job_id] = (node_id, a)
        return [a.job_id for a in got]

    def report(self, job_id: str, outcome: str = "succeeded", **extra: Any) -> dict[str, Any]:
        node_id, a = self.held[job_id]
        result = {**OK, "outcome": outcome, **extra}
        if outcome != "succeeded":
            result.update(exit_code=1, reason=extra.get("reason", "ffmpeg_error"))
        return self.store.record_result(job_id, node_id, a.attempt_token, result,
                                        now=self.now())

    def job(self, job_id: str) -> dict[str, Any]:
        return self.store.get_job(job_id)

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        jobs, _ = self.store.list_jobs(parent_id=parent_id, limit=500)
        return jobs

    def of(self, parent_id: str, step: Step) -> list[dict[str, Any]]:
        return [c for c in self.children(parent_id) if c["step"] == step]

    def run_plan(self, parent_id: str) -> None:
        (plan,) = self.of(parent_id, Step.PLAN)
        assert self.claim() == [plan["id"]]
        self.report(plan["id"], plan=PLAN)


@pytest.fixture
def farm(database: str) -> Iterator[Farm]:
    store = open_store(database)
    store.migrate()
    yield Farm(store)
    store.close()


def test_a_split_job_is_queued_with_its_plan_and_never_claimed_itself(farm: Farm) -> None:
    parent_id = farm.submit()
    parent = farm.job(parent_id)
    assert parent["step"] == "split" and parent["parent_id"] is None
    assert parent["state"] == JobState.QUEUED
    assert parent["progress"] == {"percent": 0.0, "stage": "plan", "segments": 0, "segments_done": 0}
    (plan,) = farm.children(parent_id)
    assert plan["step"] == "plan" and plan["parent_id"] == parent_id
    assert plan["spec"]["step"]["workspace"] == f"store:///out/.ffrtmp-split-{parent_id}"
    assert farm.store.counts()["jobs"] == {"queued": 1}  # the metrics count the plan, not twice
    assert farm.claim() == [plan["id"]]  # 64 free slots: the parent is not among them
    assert farm.job(parent_id)["state"] == JobState.RUNNING
    assert farm.claim(1) == []


def test_the_plan_makes_the_parts_once_and_the_parts_make_the_stitch(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    (plan,) = farm.of(parent_id, Step.PLAN)
    farm.report(plan["id"], plan=PLAN)  # delivered twice: a no-op
    segments, audio = farm.of(parent_id, Step.SEGMENT), farm.of(parent_id, Step.AUDIO)
    assert [s["spec"]["step"]["index"] for s in segments] == [0, 1, 2, 3]
    assert len(audio) == 1 and audio[0]["capabilities"] == ["aac"]
    assert all(s["capabilities"] == ["libx264"] for s in segments)
    assert sorted(farm.claim()) == sorted(c["id"] for c in segments + audio)
    for child in segments + audio:
        assert farm.of(parent_id, Step.STITCH) == []
        farm.report(child["id"])
    (stitch,) = farm.of(parent_id, Step.STITCH)
    assert stitch["spec"]["outputs"] == farm.job(parent_id)["spec"]["outputs"]
    assert farm.job(parent_id)["progress"]["percent"] == 90.0
    assert farm.claim(1) == [stitch["id"]]
    farm.report(stitch["id"])
    parent = farm.job(parent_id)
    assert parent["state"] == JobState.SUCCEEDED and parent["finished_at"]
    assert parent["progress"] == {"percent": 100.0, "stage": "stitch", "segments": 4,
                                  "segments_done": 4}
    assert parent["history"][-1]["reason"] == "stitch succeeded"


def test_progress_follows_the_segments_by_duration(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    farm.claim()
    segments = farm.of(parent_id, Step.SEGMENT)
    node_id = farm.nodes[0]
    farm.store.heartbeat(node_id, [{"job_id": segments[0]["id"], "attempt": 1,
                                    "progress": {"percent": 50.0}}], now=farm.now())
    # plan 2 + half of the first 10 s of 35 s of video (85 %)
    assert farm.job(parent_id)["progress"]["percent"] == round(2 + 85 * 5 / 35, 1)
    farm.report(segments[3]["id"])
    progress = farm.job(parent_id)["progress"]
    assert progress["percent"] == round(2 + 85 * 10 / 35, 1)
    assert (progress["stage"], progress["segments_done"]) == ("encode", 1)


def test_a_failed_segment_fails_the_parent_and_a_retry_reruns_only_it(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    farm.claim()
    segments, (audio,) = farm.of(parent_id, Step.SEGMENT), farm.of(parent_id, Step.AUDIO)
    farm.report(segments[0]["id"])
    farm.report(segments[1]["id"], "failed", reason="ffmpeg_exit_1")
    parent = farm.job(parent_id)
    assert parent["state"] == JobState.FAILED and parent["finished_at"]
    assert parent["history"][-1]["reason"] == "segment 1 failed: ffmpeg_exit_1"
    for sibling in (segments[2], segments[3], audio):  # still running: they finish
        assert farm.report(sibling["id"])["state"] == JobState.SUCCEEDED
    assert farm.job(parent_id)["state"] == JobState.FAILED
    with pytest.raises(StateConflict) as refused:
        farm.store.retry_job(segments[1]["id"])
    assert refused.value.code == "part_of_split" and parent_id in refused.value.message
    assert farm.store.retry_job(parent_id)["state"] == JobState.RUNNING
    assert farm.claim(1) == [segments[1]["id"]]
    farm.report(segments[1]["id"])
    attempts = {c["id"]: c["attempt"] for c in farm.children(parent_id)}
    assert attempts[segments[1]["id"]] == 2
    assert [attempts[c["id"]] for c in (segments[0], segments[2], segments[3], audio)] == [1] * 4
    (stitch,) = farm.of(parent_id, Step.STITCH)
    farm.claim()
    farm.report(stitch["id"])
    assert farm.job(parent_id)["state"] == JobState.SUCCEEDED


def test_a_lost_segment_makes_the_parent_lost_and_its_late_result_settles_it(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    segments, (audio,) = farm.of(parent_id, Step.SEGMENT), farm.of(parent_id, Step.AUDIO)
    assert farm.claim(0, slots=2) == [audio["id"], segments[0]["id"]]  # the audio is first
    farm.report(audio["id"])
    farm.claim(1)  # node-b runs the other segments
    for child in segments[1:]:
        farm.report(child["id"])
    farm.store.heartbeat(farm.nodes[1], [], now=farm.now() + 100)
    lost = farm.store.mark_offline(30, now=farm.now() + 100)
    assert lost == [segments[0]["id"]]
    parent = farm.job(parent_id)
    assert parent["state"] == JobState.LOST
    assert parent["history"][-1]["reason"] == "segment 0 lost: node stopped heartbeating"
    farm.report(segments[0]["id"])  # the node comes back with the real result
    (stitch,) = farm.of(parent_id, Step.STITCH)
    assert farm.job(parent_id)["state"] == JobState.RUNNING
    farm.claim()
    farm.report(stitch["id"])
    assert farm.job(parent_id)["state"] == JobState.SUCCEEDED


def test_a_lost_parent_is_retried_like_a_lost_job(farm: Farm) -> None:
    parent_id = farm.submit()
    (plan,) = farm.of(parent_id, Step.PLAN)
    farm.claim(1)
    farm.store.heartbeat(farm.nodes[0], [], now=farm.now() + 100)
    assert farm.store.mark_offline(30, now=farm.now() + 100) == [plan["id"]]
    assert farm.job(parent_id)["state"] == JobState.LOST
    assert farm.store.retry_job(parent_id)["state"] == JobState.QUEUED
    with pytest.raises(StateConflict) as stale:  # the old attempt is fenced off
        farm.report(plan["id"], plan=PLAN)
    assert stale.value.code == "stale_attempt"
    farm.run_plan(parent_id)
    assert len(farm.of(parent_id, Step.SEGMENT)) == 4
    assert farm.job(plan["id"])["attempt"] == 2


def test_cancel_cancels_queued_parts_at_once_and_sweeps_after_the_running_ones(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    segments, (audio,) = farm.of(parent_id, Step.SEGMENT), farm.of(parent_id, Step.AUDIO)
    assert farm.claim(slots=2) == [audio["id"], segments[0]["id"]]  # the rest stay queued
    farm.report(segments[0]["id"])
    parent = farm.store.cancel_job(parent_id)
    assert parent["cancel_requested"] and parent["state"] == JobState.RUNNING
    states = {c["id"]: (c["state"], c["cancel_requested"]) for c in farm.children(parent_id)}
    assert states[audio["id"]] == (JobState.RUNNING, True)
    assert [states[c["id"]][0] for c in segments[1:]] == [JobState.CANCELED] * 3
    assert farm.of(parent_id, Step.SWEEP) == []
    farm.report(audio["id"], "canceled", reason="canceled")
    (sweep,) = farm.of(parent_id, Step.SWEEP)  # segment 0 left its video in the workspace
    assert sweep["spec"]["outputs"] == [] and farm.job(parent_id)["state"] == JobState.RUNNING
    assert farm.job(parent_id)["progress"]["stage"] == "sweep"
    assert farm.store.cancel_job(parent_id)["cancel_requested"]  # again: the sweep is left alone
    assert farm.claim() == [sweep["id"]]
    farm.report(sweep["id"])
    parent = farm.job(parent_id)
    assert parent["state"] == JobState.CANCELED and parent["finished_at"]
    with pytest.raises(StateConflict) as refused:
        farm.store.retry_job(parent_id)
    assert refused.value.code == "not_retryable" and "submit it again" in refused.value.message


def test_cancel_before_anything_succeeded_needs_no_sweep(farm: Farm) -> None:
    parent_id = farm.submit()
    parent = farm.store.cancel_job(parent_id)
    assert parent["state"] == JobState.CANCELED and farm.of(parent_id, Step.SWEEP) == []
    other = farm.submit()
    farm.run_plan(other)  # the plan writes nothing: its success leaves nothing to sweep
    assert farm.store.cancel_job(other)["state"] == JobState.CANCELED
    assert farm.of(other, Step.SWEEP) == []
    assert {c["state"] for c in farm.children(other) if c["step"] != "plan"} == {JobState.CANCELED}


def test_a_failed_parent_can_be_canceled_to_sweep_its_intermediates(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    farm.claim()
    segments = farm.of(parent_id, Step.SEGMENT)
    farm.report(segments[0]["id"])
    farm.report(segments[1]["id"], "failed")
    for child in farm.children(parent_id):
        if child["state"] == JobState.RUNNING:
            farm.report(child["id"], "failed")
    assert farm.job(parent_id)["state"] == JobState.FAILED
    farm.store.cancel_job(parent_id)
    (sweep,) = farm.of(parent_id, Step.SWEEP)
    farm.claim()
    farm.report(sweep["id"], "failed", reason="store unavailable")
    assert farm.job(parent_id)["state"] == JobState.CANCELED  # the sweep ended: nothing is left to do


def test_children_refuse_cancel_and_retry_naming_their_parent(farm: Farm) -> None:
    parent_id = farm.submit()
    (plan,) = farm.children(parent_id)
    for action in (farm.store.cancel_job, farm.store.retry_job):
        with pytest.raises(StateConflict) as refused:
            action(plan["id"])
        assert refused.value.code == "part_of_split"
        assert refused.value.details == {"parent_id": parent_id}
    with pytest.raises(StateConflict) as running:
        farm.store.retry_job(parent_id)
    assert running.value.code == "not_retryable"


def test_lists_show_top_level_jobs_unless_asked_and_purge_takes_a_family(farm: Farm) -> None:
    ordinary = farm.store.submit_job(
        {"input": "testsrc://?duration=1", "outputs": []}, queue="default", priority="medium",
        capabilities=["h264_nvenc"], intent=None, now=farm.now())["id"]  # no node takes it
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    top, _ = farm.store.list_jobs()
    assert [j["id"] for j in top] == [parent_id, ordinary]
    everything, _ = farm.store.list_jobs(children=True, limit=500)
    assert len(everything) == 2 + 1 + 5
    kids = farm.children(parent_id)
    assert [c["step"] for c in kids] == ["plan", "audio", *["segment"] * 4]  # oldest first
    on_node, _ = farm.store.list_jobs(node_id=farm.nodes[0])  # a node runs parts, not parents
    assert [j["id"] for j in on_node] == [kids[0]["id"]]
    page, cursor = farm.store.list_jobs(parent_id=parent_id, limit=4)
    rest, end = farm.store.list_jobs(parent_id=parent_id, limit=4, before=cursor)
    assert [c["id"] for c in page + rest] == [c["id"] for c in kids] and end is None
    farm.store.cancel_job(ordinary, now=farm.now())
    farm.store.cancel_job(parent_id, now=farm.now())  # all at once
    assert farm.store.purge_finished(1, now=farm.now() + 2 * 86400) == 2
    assert farm.store.list_jobs(children=True)[0] == []


def test_retention_gives_up_a_failed_split_by_its_sweep_then_purges_it(farm: Farm) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    farm.claim()
    segments = farm.of(parent_id, Step.SEGMENT)
    farm.report(segments[0]["id"], "failed")
    later = farm.now() + 2 * 86400
    assert farm.store.purge_finished(1, now=later) == 0  # its parts still run: nothing happens
    assert not farm.job(parent_id)["cancel_requested"] and not farm.of(parent_id, Step.SWEEP)
    for child in farm.children(parent_id):
        if child["state"] == JobState.RUNNING:
            farm.report(child["id"])
    # failed, holding the intermediates of its succeeded parts: given up, not deleted
    assert farm.store.purge_finished(1, now=later) == 0
    assert farm.job(parent_id)["cancel_requested"]
    (sweep,) = farm.of(parent_id, Step.SWEEP)
    assert farm.claim() == [sweep["id"]]
    farm.report(sweep["id"])
    assert farm.job(parent_id)["state"] == JobState.CANCELED
    assert farm.store.purge_finished(1, now=later + 2 * 86400) == 1
    assert farm.store.list_jobs(children=True)[0] == []


def test_the_parent_settles_in_the_transaction_of_the_childs_change(
        farm: Farm, monkeypatch: pytest.MonkeyPatch) -> None:
    parent_id = farm.submit()
    (plan,) = farm.children(parent_id)
    farm.claim()

    def broken(*args: Any) -> Any:
        raise RuntimeError("the master stops here")

    monkeypatch.setattr(split, "part_children", broken)
    with pytest.raises(RuntimeError):
        farm.report(plan["id"], plan=PLAN)
    assert farm.job(plan["id"])["state"] == JobState.RUNNING  # the result rolled back with it
    assert len(farm.children(parent_id)) == 1
    monkeypatch.undo()
    farm.report(plan["id"], plan=PLAN)  # the agent sends it again
    assert len(farm.children(parent_id)) == 6


def test_a_master_restart_finds_the_split_job_as_it_was(farm: Farm, database: str) -> None:
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    before = farm.job(parent_id)
    farm.store.close()
    farm.store = open_store(database)
    farm.store.migrate()
    assert farm.job(parent_id) == before
    assert len(farm.children(parent_id)) == 6


def _waiting_on_a_lock(database: str) -> int:
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                           " AND datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def test_the_last_two_parts_succeeding_at_once_make_one_stitch(
        farm: Farm, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two results settle one parent at the same moment: the second to settle sees the
    first's success, so exactly one of them inserts the stitch. On PostgreSQL the first holds
    its transaction open, in the middle of settling, until the second waits on one of its
    locks (each on its own connection); SQLite's writers take turns anyway."""
    parent_id = farm.submit()
    farm.run_plan(parent_id)
    farm.claim()
    parts = farm.of(parent_id, Step.SEGMENT) + farm.of(parent_id, Step.AUDIO)
    for child in parts[:-2]:
        farm.report(child["id"])
    if database.startswith("postgresql"):
        read_children, held = SplitMixin._children, threading.Event()

        def once_the_other_waits(self: SplitMixin, conn: Any, parent: str, *, lock: str = "") -> Any:
            if not held.is_set():
                held.set()
                wait_until(lambda: _waiting_on_a_lock(database), 15, "the other result to wait")
            return read_children(self, conn, parent, lock=lock)

        monkeypatch.setattr(SplitMixin, "_children", once_the_other_waits)
    both = threading.Barrier(2)

    def deliver(job_id: str) -> str:
        both.wait(timeout=30)
        return str(farm.report(job_id)["state"])

    with ThreadPoolExecutor(2) as pool:
        states = list(pool.map(deliver, [c["id"] for c in parts[-2:]]))
    assert states == ["succeeded", "succeeded"]
    assert len(farm.of(parent_id, Step.STITCH)) == 1
    assert farm.job(parent_id)["progress"]["segments_done"] == 4
