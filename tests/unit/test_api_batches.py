"""The batch routes (``POST /nodes/{id}/starts``, ``/results``), in-process on SQLite and PostgreSQL.

Each item is answered as its single route would answer it, in order; the accepted items commit
together, a refused one changes nothing, and a batch sent again changes nothing.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ffrtmp.contract import MAX_BATCH
from tests.conftest import Api, register

SPEC = {"input": "testsrc://?duration=2&size=320x240&rate=25",
        "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}]}


def submit(api: Api, n: int = 1) -> list[str]:
    return [api.post("/api/v1/jobs", json=SPEC, expect=201).get_json()["job"]["id"] for _ in range(n)]


def claim(node: Api, node_id: str, slots: int) -> list[dict[str, Any]]:
    reply = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": slots}).get_json()
    assignments: list[dict[str, Any]] = reply["assignments"]
    return assignments


def starts(node: Api, node_id: str, items: list[Any], expect: int = 200) -> Any:
    reply = node.post(f"/api/v1/nodes/{node_id}/starts", json={"starts": items}, expect=expect)
    return reply.get_json()["starts"] if expect == 200 else reply.get_json()


def results(node: Api, node_id: str, items: list[Any], expect: int = 200) -> Any:
    reply = node.post(f"/api/v1/nodes/{node_id}/results", json={"results": items}, expect=expect)
    return reply.get_json()["results"] if expect == 200 else reply.get_json()


def start_item(a: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": a["job_id"], "attempt_token": a["attempt_token"]}


def result_item(a: dict[str, Any], outcome: str = "succeeded", **kw: Any) -> dict[str, Any]:
    return {"job_id": a["job_id"], "attempt_token": a["attempt_token"], "outcome": outcome,
            "exit_code": 0 if outcome == "succeeded" else 1, "reason": outcome, **kw}


def job(api: Api, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    return found


def codes(entries: list[dict[str, Any]]) -> list[tuple[int, str | None]]:
    return [(e["status"], e.get("error", {}).get("code")) for e in entries]


def test_starts_answer_each_item_as_the_single_route_and_commit_the_good_ones(api: Api) -> None:
    mine = submit(api, 2)
    node_id, node = register(api, "node-a")
    other_id, other = register(api, "node-b")
    a, b = claim(node, node_id, 2)
    submit(api)
    theirs = claim(other, other_id, 1)
    entries = starts(node, node_id, [
        start_item(a),
        {"job_id": b["job_id"], "attempt_token": "not-a-token"},  # stale: refused, changes nothing
        start_item(theirs[0]),  # another node's attempt
        {"job_id": "j-missing", "attempt_token": "x"},
        {"job_id": "not-a-job", "attempt_token": "x"},
        {"job_id": a["job_id"]},
        "not an object",
        start_item(b),
    ])
    assert codes(entries) == [(200, None), (409, "stale_attempt"), (403, "not_your_attempt"),
                              (404, "job_not_found"), (422, "invalid"), (422, "invalid"),
                              (422, "invalid"), (200, None)]
    assert entries[0] == {"status": 200, "job_id": a["job_id"], "attempt": 1, "state": "running"}
    assert entries[5]["error"]["details"] == {"field": "attempt_token"}
    single = other.post(f"/api/v1/jobs/{theirs[0]['job_id']}/start",
                        json={"attempt_token": a["attempt_token"]}, expect=409).get_json()
    assert {"status": 409, **single} == starts(other, other_id, [
        {"job_id": theirs[0]["job_id"], "attempt_token": a["attempt_token"]}])[0]
    assert [job(api, j)["state"] for j in mine] == ["running", "running"]
    assert job(api, theirs[0]["job_id"])["state"] == "assigned"


def test_a_resent_batch_changes_nothing(api: Api) -> None:
    submit(api, 3)
    node_id, node = register(api)
    assigned = claim(node, node_id, 2)
    first = starts(node, node_id, [start_item(a) for a in assigned])
    assert starts(node, node_id, [start_item(a) for a in assigned]) == first
    report = [result_item(assigned[0]), result_item(assigned[1], "failed")]
    done = results(node, node_id, report)
    history = [job(api, a["job_id"])["history"] for a in assigned]
    assert results(node, node_id, report) == done
    assert codes(done) == [(200, None), (200, None)]
    assert [e["state"] for e in done] == ["succeeded", "failed"]
    assert [job(api, a["job_id"])["history"] for a in assigned] == history
    changed = results(node, node_id, [result_item(assigned[0], "failed")])
    assert codes(changed) == [(409, "result_conflict")]


def test_results_with_stale_and_foreign_tokens_are_refused_per_item(api: Api) -> None:
    submit(api, 2)
    node_id, node = register(api, "node-a")
    a, b = claim(node, node_id, 2)
    starts(node, node_id, [start_item(a), start_item(b)])
    api.post(f"/api/v1/jobs/{b['job_id']}/cancel")
    other_id, other = register(api, "node-b")
    entries = results(other, other_id, [result_item(a)])  # node-b holds node-a's token
    assert codes(entries) == [(403, "not_your_attempt")]
    entries = results(node, node_id, [
        result_item(a, log_tail="frame=1\n"),
        {**result_item(b), "attempt_token": "fenced"},
        {**result_item(a), "plan": {"segments": []}},  # only a split's plan step reports one
        {**result_item(a), "outcome": "maybe"},
        {**result_item(a), "surprise": 1},
        result_item(b, "canceled"),
    ])
    assert codes(entries) == [(200, None), (409, "stale_attempt"), (422, "invalid"),
                              (422, "invalid"), (422, "invalid"), (200, None)]
    assert entries[5]["state"] == "canceled"
    assert job(api, a["job_id"])["state"] == "succeeded"
    assert api.get(f"/api/v1/jobs/{a['job_id']}/logs").get_json()["log"] == "frame=1\n"


def test_whole_request_errors_are_json_4xx(api: Api) -> None:
    node_id, node = register(api, "node-a")
    other_id, _ = register(api, "node-b")
    for route in ("starts", "results"):
        url = f"/api/v1/nodes/{node_id}/{route}"
        too_many = node.post(url, json={route: [{}] * (MAX_BATCH + 1)}, expect=422).get_json()
        assert too_many["error"]["details"] == {"field": route}
        for body in ({}, {route: {}}, {route: "x"}, {route: [], "more": 1}, [1, 2]):
            assert node.post(url, json=body, expect=422).get_json()["error"]["code"] == "invalid"
        assert node.post(url, data=b"{", headers={"Content-Type": "application/json"},
                         expect=400).get_json()["error"]["code"] == "bad_request"
        assert node.post(url, json={route: []}).get_json() == {route: []}
        node.post(f"/api/v1/nodes/{other_id}/{route}", json={route: []}, expect=403)
        api.post(url, json={route: []}, expect=403)  # an operator token
        api.as_("nobody").post(url, json={route: []}, expect=401)
    huge = [{"job_id": "j-x", "attempt_token": "t", "outcome": "failed", "log_tail": "x" * 60000}] * 20
    assert node.post(f"/api/v1/nodes/{node_id}/results", json={"results": huge},
                     expect=413).get_json()["error"]["code"]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kinds = [None, True, 0, -1, 2**70, 1.5, "", "j-abc", "x" * 300, [], {}]
    value = rng.choice(kinds)
    if depth < 2 and rng.random() < 0.3:
        return {rng.choice(["job_id", "attempt_token", "outcome", "outputs", "plan", "exit_code",
                            "signal", "z"]): _junk(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return value


@pytest.mark.parametrize("route", ["starts", "results"])
def test_junk_items_are_answered_4xx_and_never_500(api: Api, route: str) -> None:
    submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id, 1)
    rng = random.Random(11)
    items = [_junk(rng) for _ in range(120)] + [start_item(a) if route == "starts" else result_item(a)]
    reply = node.post(f"/api/v1/nodes/{node_id}/{route}", json={route: items}, expect=None)
    assert reply.status_code == 200, reply.get_json()
    entries = reply.get_json()[route]
    assert len(entries) == len(items)
    assert all(400 <= e["status"] < 500 and e["error"]["code"] for e in entries[:-1])
    assert entries[-1]["status"] == 200
