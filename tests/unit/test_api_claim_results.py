"""A claim that carries results (``POST /nodes/{id}/claim`` with ``results``), in-process on
SQLite and PostgreSQL: the results are recorded first, exactly as the results route records
them, so their slots are free for the claim; each is answered in its own entry, and the same
message sent again is answered the same.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, register
from tests.unit.test_api_batches import claim, codes, job, result_item, results, start_item, starts, submit


def claim_with(node: Api, node_id: str, slots: int, report: list[Any], **extra: Any) -> Any:
    return node.post(f"/api/v1/nodes/{node_id}/claim",
                     json={"slots": slots, "results": report, **extra}).get_json()


def test_the_results_a_claim_carries_free_their_slots_for_it(api: Api) -> None:
    submit(api, 4)
    node_id, node = register(api, slots=2)
    a, b = claim(node, node_id, 2)
    starts(node, node_id, [start_item(a), start_item(b)])
    assert claim(node, node_id, 2) == []  # both slots busy
    reply = claim_with(node, node_id, 2, [result_item(a), result_item(b, "failed")])
    assert codes(reply["results"]) == [(200, None), (200, None)]
    assert [e["state"] for e in reply["results"]] == ["succeeded", "failed"]
    assert len(reply["assignments"]) == 2  # the two that were still queued
    assert [job(api, x["job_id"])["state"] for x in (a, b)] == ["succeeded", "failed"]


def test_each_result_is_answered_as_the_results_route_would_and_holds_back_nothing(api: Api) -> None:
    submit(api, 3)
    node_id, node = register(api, slots=2)
    a, b = claim(node, node_id, 2)
    starts(node, node_id, [start_item(a), start_item(b)])
    report = [result_item(a), {**result_item(b), "attempt_token": "fenced"}, "not an object"]
    reply = claim_with(node, node_id, 2, report)
    expected = codes(results(node, node_id, report))  # the route's answers to the same items
    assert codes(reply["results"]) == expected == [(200, None), (409, "stale_attempt"),
                                                   (422, "invalid")]
    assert len(reply["assignments"]) == 1  # a's slot is free; b still holds its own


def test_a_claim_sent_again_is_answered_the_same(api: Api) -> None:
    submit(api, 2)
    node_id, node = register(api, slots=1)
    [a] = claim(node, node_id, 1)
    starts(node, node_id, [start_item(a)])
    first = claim_with(node, node_id, 1, [result_item(a)], claim_id="claim-message-1")
    again = claim_with(node, node_id, 1, [result_item(a)], claim_id="claim-message-1")
    assert again["results"] == first["results"]
    assert [x["job_id"] for x in again["assignments"]] == [x["job_id"] for x in first["assignments"]]
    assert len(first["assignments"]) == 1


def test_a_claim_without_results_answers_no_results(api: Api) -> None:
    submit(api)
    node_id, node = register(api)
    reply = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()
    assert set(reply) == {"assignments"}
