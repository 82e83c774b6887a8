"""A node's capacity when its agent reports ended attempts, on SQLite and PostgreSQL.

An attempt whose workload has ended on the node (its result on the way, the output probe and
the delivery still to go) no longer holds a slot: the agent lists it in its claim (``ended``)
and the master lets the slot be refilled before the result lands. Everything else holds as
before: an attempt not listed counts against the slots, only the node's own started attempts
count as ended, and at most ``slots`` results may be pending at once, so a node never holds
more than twice its slots of attempts however its agent reports them.
"""

from __future__ import annotations

from typing import Any

import pytest

from ffrtmp.master.store.protocol import Assignment, Store
from tests.conftest import Api, register


def _node(store: Store, name: str = "w1", slots: int = 2) -> str:
    node, _, _ = store.register_node(name=name, slots=slots, encoders=[], hwaccels=[], labels={},
                                     ffmpeg_version="7", agent_version="1", live_s=30, now=1000.0)
    return str(node["id"])


def _queue(store: Store, n: int) -> list[str]:
    return [str(store.submit_job({"input": "x"}, queue="default", priority="medium",
                                 capabilities=[], intent=None, now=1000.0)["id"]) for _ in range(n)]


def _started(store: Store, node: str, slots: int, **kw: Any) -> list[Assignment]:
    got = store.claim(node, slots, lease_s=60, now=1001.0, **kw)
    for a in got:
        store.start(a.job_id, node, a.attempt_token, now=1001.5)
    return got


def _ended(assignments: list[Assignment]) -> list[tuple[str, int]]:
    return [(a.job_id, a.attempt) for a in assignments]


def test_a_full_node_gets_nothing_unless_it_reports_ended_attempts(store: Store) -> None:
    node = _node(store)
    _queue(store, 5)
    first = _started(store, node, 2)
    assert len(first) == 2
    assert store.claim(node, 2, lease_s=60, now=1002.0) == []  # the old rule, unchanged
    [refill] = store.claim(node, 2, lease_s=60, now=1002.0, ended=_ended(first[:1]))
    assert refill.job_id not in {a.job_id for a in first}
    # the listed attempt freed one slot, and the refill took it
    assert store.claim(node, 2, lease_s=60, now=1002.0, ended=_ended(first[:1])) == []


def test_ended_attempts_free_at_most_the_nodes_slots(store: Store) -> None:
    node = _node(store)
    _queue(store, 8)
    first = _started(store, node, 2)
    second = _started(store, node, 2, ended=_ended(first))
    assert len(second) == 2
    # four attempts held, all four said to have ended: only ``slots`` results may be pending
    assert store.claim(node, 2, lease_s=60, now=1003.0, ended=_ended(first + second)) == []
    assert store.claim(node, 2, lease_s=60, now=1003.0, ended=_ended(second)) == []


def test_only_the_nodes_own_started_current_attempts_count_as_ended(store: Store) -> None:
    node, other = _node(store, "w1"), _node(store, "w2")
    _queue(store, 6)
    mine = _started(store, node, 2)
    theirs = _started(store, other, 1)
    [unstarted] = store.claim(other, 1, lease_s=60, now=1001.0)
    bogus = [*_ended(theirs), (unstarted.job_id, unstarted.attempt),
             (mine[0].job_id, mine[0].attempt + 1), ("j-000000000000", 1)]
    assert store.claim(node, 2, lease_s=60, now=1002.0, ended=bogus) == []
    # an attempt listed twice frees one slot
    assert len(store.claim(node, 2, lease_s=60, now=1002.0,
                           ended=_ended(mine[:1]) * 2)) == 1


def test_an_assigned_attempt_never_counts_as_ended(store: Store) -> None:
    node = _node(store, slots=1)
    _queue(store, 3)
    [held] = store.claim(node, 1, lease_s=60, now=1001.0)  # claimed, its start not confirmed
    assert store.claim(node, 1, lease_s=60, now=1002.0, ended=_ended([held])) == []


def test_a_delivered_result_no_longer_counts_as_pending(store: Store) -> None:
    node = _node(store, slots=1)
    _queue(store, 4)
    [a] = _started(store, node, 1)
    [b] = _started(store, node, 1, ended=_ended([a]))
    store.record_result(a.job_id, node, a.attempt_token, {"outcome": "succeeded"}, now=1003.0)
    # ``a`` is settled: listing it again frees nothing, ``b`` holds the one slot
    assert store.claim(node, 1, lease_s=60, now=1004.0, ended=_ended([a])) == []
    [c] = store.claim(node, 1, lease_s=60, now=1004.0, ended=_ended([b]))
    assert c.job_id not in (a.job_id, b.job_id)


def test_a_draining_node_gets_nothing_whatever_has_ended(store: Store) -> None:
    node = _node(store)
    _queue(store, 4)
    first = _started(store, node, 2)
    store.set_draining(node, True)
    assert store.claim(node, 2, lease_s=60, now=1002.0, ended=_ended(first)) == []


def test_the_claim_route_takes_ended_attempts(api: Api) -> None:
    for _ in range(3):
        api.post("/api/v1/jobs", json={"input": "testsrc://?duration=1", "outputs": [
            {"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}]}, expect=201)
    node_id, node = register(api, slots=1)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    node.post(f"/api/v1/jobs/{a['job_id']}/start", json={"attempt_token": a["attempt_token"]})
    claim = f"/api/v1/nodes/{node_id}/claim"
    assert node.post(claim, json={"slots": 1}).get_json()["assignments"] == []
    ended = [{"job_id": a["job_id"], "attempt": a["attempt"]}]
    [b] = node.post(claim, json={"slots": 1, "ended": ended}).get_json()["assignments"]
    assert b["job_id"] != a["job_id"]


@pytest.mark.parametrize("ended, field", [
    ("j-1", "ended"),
    ([{"job_id": "j-1"}], "ended[0].attempt"),
    ([{"job_id": "../x", "attempt": 1}], "ended[0].job_id"),
    ([{"job_id": "j-1", "attempt": 0}], "ended[0].attempt"),
    ([{"job_id": "j-1", "attempt": 1, "extra": 1}], "ended[0].extra"),
    ([{"job_id": "j-1", "attempt": 1}] * 257, "ended"),
])
def test_a_malformed_ended_list_is_a_422_naming_it(api: Api, ended: Any, field: str) -> None:
    node_id, node = register(api)
    reply = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1, "ended": ended},
                      expect=422).get_json()
    assert reply["error"]["details"]["field"] == field, reply

