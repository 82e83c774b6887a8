"""A claim carries the results that are ready, answered per item in the same reply; a master
from before that refuses the field, and is then claimed from without it (the results go on
their own route, as before).

A loopback HTTP server plays the master (``tests.fake_master``): no master from before this
change can run here, so its refusal is scripted as such a master words it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ffrtmp.agent.client import BATCH_BYTES, MasterClient, MasterRejected, RetryPolicy
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master

OLD_MASTER_REFUSAL = {"error": {"code": "invalid", "message": "results: unknown field",
                                "details": {"field": "results"}}}
ASSIGNMENT = {"job_id": "j-9", "attempt": 1, "attempt_token": "t9", "lease_s": 30, "spec": {}}
RESULT = {"attempt_token": "t1", "outcome": "succeeded", "exit_code": 0}
STALE = {"status": 409, "error": {"code": "stale_attempt", "message": "not the current attempt"}}


class Master:
    def __init__(self) -> None:
        self.old = False
        self.bodies: list[dict[str, Any]] = []

    def answer(self, _path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        if "results" in body and self.old:
            return 422, OLD_MASTER_REFUSAL
        reply: dict[str, Any] = {"assignments": [ASSIGNMENT]}
        if "results" in body:
            reply["results"] = [{"status": 200, "job_id": r["job_id"], "state": "succeeded"}
                                if r["job_id"] == "j-1" else STALE for r in body["results"]]
        return 200, reply


@pytest.fixture
def farm() -> Iterator[tuple[MasterClient, Master]]:
    master = Master()
    with fake_master(master.answer) as url:
        client = MasterClient(url, shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=5)
        client.node_id, client.credential = "n-1", "secret"
        yield client, master


def test_a_claim_delivers_the_results_it_carries_and_answers_each(
        farm: tuple[MasterClient, Master]) -> None:
    client, master = farm
    assignments, outcomes = client.claim_delivering(2, 0.0, [], [("j-1", RESULT), ("j-2", RESULT)])
    assert assignments == [ASSIGNMENT]
    assert outcomes is not None and outcomes[0] == {"job_id": "j-1", "state": "succeeded"}
    assert isinstance(outcomes[1], MasterRejected) and outcomes[1].code == "stale_attempt"
    [body] = master.bodies
    assert body["results"] == [{**RESULT, "job_id": "j-1"}, {**RESULT, "job_id": "j-2"}]


def test_a_master_from_before_is_claimed_from_and_the_results_are_left_to_their_route(
        farm: tuple[MasterClient, Master]) -> None:
    client, master = farm
    master.old = True
    assert client.claim_delivering(2, 0.0, [], [("j-1", RESULT)]) == ([ASSIGNMENT], None)
    assert client.claim_delivering(2, 0.0, [], [("j-1", RESULT)]) == ([ASSIGNMENT], None)
    assert [("results" in body) for body in master.bodies] == [True, False, False]
    assert not client.claim_results


def test_results_too_big_for_one_request_are_left_to_their_route(
        farm: tuple[MasterClient, Master]) -> None:
    client, master = farm
    big = {**RESULT, "log_tail": "x" * (BATCH_BYTES // 2 + 1)}
    assert client.claim_delivering(2, 0.0, [], [("j-1", big), ("j-2", big)]) == ([ASSIGNMENT], None)
    assert "results" not in master.bodies[0]
    assert client.claim_results  # not refused: the next ones that fit go with a claim


def test_a_claim_with_no_results_sends_none(farm: tuple[MasterClient, Master]) -> None:
    client, master = farm
    assert client.claim(2, 0.0) == [ASSIGNMENT]
    assert "results" not in master.bodies[0]
