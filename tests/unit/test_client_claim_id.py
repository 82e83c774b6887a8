"""Each claim message carries its own claim id, kept by its retries and failovers; a master
from before claim ids refuses the field, and is then claimed from without it.

Two loopback HTTP servers play two masters (``tests.fake_master``); every body is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ffrtmp.agent.client import MasterClient, RetryPolicy
from ffrtmp.master.api.agents import CLAIM_ID
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master

OLD_MASTER_REFUSAL = {"error": {"code": "invalid", "message": "claim_id: unknown field",
                                "details": {"field": "claim_id"}}}
ASSIGNMENT = {"job_id": "j-1", "attempt": 1, "attempt_token": "t", "lease_s": 30, "spec": {}}


class Masters:
    """Two masters: each answers claims with the status its list names next (then 200)."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[int]] = {"a": [], "b": []}
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.old = False  # the masters refuse claim_id, as those before it did

    def script(self, name: str) -> Any:
        def answer(_path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            self.bodies.append((name, body))
            if self.old and "claim_id" in body:
                return 422, OLD_MASTER_REFUSAL
            status = self.statuses[name].pop(0) if self.statuses[name] else 200
            if status != 200:
                return status, {"error": {"code": "unavailable", "message": "down"}}
            return 200, {"assignments": [ASSIGNMENT]}
        return answer


@pytest.fixture
def farm() -> Iterator[tuple[MasterClient, Masters]]:
    masters = Masters()
    with fake_master(masters.script("a")) as a, fake_master(masters.script("b")) as b:
        client = MasterClient([a, b], shutdown=Shutdown(),
                              retry=RetryPolicy(total=1, backoff_factor=0.01), timeout_s=5)
        client.node_id, client.credential = "n-1", "secret"
        yield client, masters


def test_every_retry_and_failover_of_a_claim_keeps_its_claim_id(
        farm: tuple[MasterClient, Masters]) -> None:
    client, masters = farm
    masters.statuses = {"a": [503, 503], "b": [502]}  # a, b, (backoff) a, then b answers
    assert client.claim(2, 0.0) == [ASSIGNMENT]
    assert [name for name, _ in masters.bodies] == ["a", "b", "a", "b"]
    ids = {body["claim_id"] for _, body in masters.bodies}
    assert len(ids) == 1
    [claim_id] = ids
    assert CLAIM_ID.pattern.fullmatch(claim_id), "the master's own rule for claim ids"
    assert all(body == {"slots": 2, "wait_s": 0.0, "claim_id": claim_id} for _, body in masters.bodies)


def test_each_claim_message_has_a_new_claim_id(farm: tuple[MasterClient, Masters]) -> None:
    client, masters = farm
    for _ in range(3):
        client.claim(1, 0.0)
    ids = [body["claim_id"] for _, body in masters.bodies]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]{16}", i) for i in ids)


def test_a_master_from_before_claim_ids_is_claimed_from_without_them(
        farm: tuple[MasterClient, Masters]) -> None:
    client, masters = farm
    masters.old = True
    assert client.claim(1, 0.0, ended=[("j-0", 2)]) == [ASSIGNMENT]
    assert client.claim(1, 0.0) == [ASSIGNMENT]
    assert [("claim_id" in body) for _, body in masters.bodies] == [True, False, False]
    assert masters.bodies[1][1] == {"slots": 1, "wait_s": 0.0,
                                    "ended": [{"job_id": "j-0", "attempt": 2}]}
    masters.old = False
    masters.statuses["a"] = [503]  # a switch to another master: it may take claim ids again
    client.claim(1, 0.0)
    assert [(name, "claim_id" in body) for name, body in masters.bodies[3:]] == [("a", False),
                                                                                ("b", False)]
    client.claim(1, 0.0)
    assert "claim_id" in masters.bodies[-1][1]
