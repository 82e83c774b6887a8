"""The queue's last hour (``store.queue_stats``, ``GET /api/v1/stats/queue``), on SQLite and
PostgreSQL: the depth at each bucket's end, derived back from the counters through the history,
and the jobs finished in each bucket, exactly, at controlled times.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ffrtmp import jobspec
from ffrtmp.isotime import iso_from_ts, parse_iso
from ffrtmp.master.store.sqlstore import SqlStore
from tests.conftest import Api, register
from tests.unit.test_store_split import MEDIA_ROOTS, OK, Farm

NOW = 1_800_000_000.0  # the end of the last bucket; bucket i ends at NOW - 300 * (11 - i)
PLAIN = {"input": "store:///in/a.mp4", "outputs": [{"url": "store:///out/a.mp4", "preset": "h264-480p"}]}


def end(i: int) -> float:
    return NOW - 300 * (11 - i)


class Plain:
    """Ordinary jobs moved through their lifecycle at the given times, as the API does."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        node, _, _ = store.register_node(name="n", slots=8, encoders=["libx264", "aac"], hwaccels=[],
                                         labels={}, ffmpeg_version="7", agent_version="1", live_s=30,
                                         now=NOW - 5000)
        self.node = str(node["id"])
        self.tokens: dict[str, str] = {}

    def submit(self, at: float, priority: str = "medium") -> str:
        spec = jobspec.parse({**PLAIN, "priority": priority}, MEDIA_ROOTS, submitted=True)
        job = self.store.submit_job(spec.to_dict(), queue=spec.queue, priority=spec.priority,
                                    capabilities=spec.capabilities(), intent=None, now=at)
        return str(job["id"])

    def claim(self, job_id: str, at: float) -> None:
        [a] = self.store.claim(self.node, 1, lease_s=10_000, now=at)
        assert a.job_id == job_id
        self.store.start(job_id, self.node, a.attempt_token, now=at)
        self.tokens[job_id] = a.attempt_token

    def finish(self, job_id: str, at: float, outcome: str = "succeeded") -> None:
        result = {**OK, "outcome": outcome}
        if outcome != "succeeded":
            result.update(exit_code=1, reason="ffmpeg_error")
        self.store.record_result(job_id, self.node, self.tokens[job_id], result, now=at)


def test_the_buckets_show_the_depth_and_the_finished_jobs_at_each_end(store: SqlStore) -> None:
    farm = Plain(store)
    a = farm.submit(NOW - 4000)             # queued before the hour began
    farm.claim(a, NOW - 2900)               # leaves the queue in bucket 2
    farm.finish(a, NOW - 2000)              # finished in bucket 5
    b = farm.submit(NOW - 1000)             # queued in bucket 8, still queued
    c = farm.submit(NOW - 500, "high")      # bucket 10: queued and claimed before b
    farm.claim(c, NOW - 400)
    farm.finish(c, NOW - 200, "failed")     # bucket 11
    store.retry_job(c, now=NOW - 100)       # queued again in bucket 11
    d = farm.submit(end(10))                # at a bucket's end exactly: counted at that end
    store.cancel_job(d, now=NOW - 50)       # from the queue to a final state, bucket 11
    farm.submit(NOW + 10)                   # after the window: in the count now, not at its end
    assert b and store.counts()["jobs"]["queued"] == 3

    stats = store.queue_stats(now=NOW)
    assert stats["bucket_s"] == 300
    assert [x["end"] for x in stats["buckets"]] == [iso_from_ts(end(i)) for i in range(12)]
    assert [x["queued"] for x in stats["buckets"]] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    assert [x["finished"] for x in stats["buckets"]] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2]
    later = store.queue_stats(now=NOW + 20)["buckets"]
    assert later[-1]["queued"] == store.counts()["jobs"]["queued"] == 3


def test_an_empty_store_has_an_empty_hour(store: SqlStore) -> None:
    stats = store.queue_stats(now=NOW)
    assert [(x["queued"], x["finished"]) for x in stats["buckets"]] == [(0, 0)] * 12


def test_a_split_job_counts_as_its_parts_like_the_gauge(store: SqlStore) -> None:
    farm = Farm(store)
    parent = farm.submit()
    assert store.queue_stats(now=farm.now())["buckets"][-1]["queued"] == 1  # its plan alone
    farm.run_plan(parent)
    stats = store.queue_stats(now=farm.now())["buckets"]
    queued = store.counts()["jobs"]["queued"]
    assert queued > 1 and stats[-1]["queued"] == queued
    assert sum(x["finished"] for x in stats) == 1  # the plan; the parent is running, not counted


def test_the_hour_is_read_through_the_index_on_sqlite(store: SqlStore, database: str) -> None:
    if not database.startswith("sqlite"):
        pytest.skip("SQLite's plan; PostgreSQL's planner chooses by table statistics")
    from ffrtmp.master.store.queuestats import _history_sql
    plan = [str(list(row)) for row in
            store._read().execute("EXPLAIN QUERY PLAN " + _history_sql(), (NOW,) * 13).fetchall()]
    assert any("transitions_at" in step for step in plan), plan


def test_the_route_answers_the_hour_to_an_operator_only(api: Api) -> None:
    api.post("/api/v1/jobs", expect=201, json={
        "input": "testsrc://?duration=5",
        "outputs": [{"url": "rtmp://127.0.0.1/live/a", "preset": "h264-480p"}]})
    body: dict[str, Any] = api.get("/api/v1/stats/queue").get_json()
    assert set(body) == {"bucket_s", "buckets"} and body["bucket_s"] == 300
    assert len(body["buckets"]) == 12
    assert all(set(b) == {"end", "queued", "finished"} for b in body["buckets"])
    ends = [parse_iso(b["end"]).timestamp() for b in body["buckets"]]
    assert [round(y - x) for x, y in itertools.pairwise(ends)] == [300] * 11
    assert body["buckets"][-1]["queued"] == 1 and body["buckets"][0]["queued"] == 0
    assert api.as_("").get("/api/v1/stats/queue", expect=401).get_json()["error"]["code"] == "unauthorized"
    _, node = register(api)
    node.get("/api/v1/stats/queue", expect=403)


@pytest.mark.parametrize("query", ["window=3600", "bucket_s=60", "x", "now=%ff"])
def test_the_route_refuses_any_query_as_invalid_not_a_500(api: Api, query: str) -> None:
    reply = api.get(f"/api/v1/stats/queue?{query}", expect=422).get_json()
    assert reply["error"]["code"] == "invalid"
