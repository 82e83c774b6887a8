"""The client's batch calls against a real HTTP server on loopback playing the master.

Each item's outcome is what its single call would have returned or raised; a master without
the batch routes gets one request per item; a whole request that cannot be delivered raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ffrtmp.agent import client as client_module
from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable, RetryPolicy
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master


class Fake:
    """Records each request's path and body; ``batches`` False answers them 404 not_found."""

    def __init__(self) -> None:
        self.batches = True
        self.requests: list[tuple[str, Any]] = []

    def answer(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        self.requests.append((path, body))
        if path.endswith(("/starts", "/results")):
            if not self.batches:
                return 404, {"error": {"code": "not_found", "message": "no", "details": None}}
            route = path.rsplit("/", 1)[1]
            return 200, {route: [self.entry(item) for item in body[route]]}
        job_id = path.split("/")[4]
        entry = self.entry({**body, "job_id": job_id})
        status = entry.pop("status")
        return status, entry

    @staticmethod
    def entry(item: dict[str, Any]) -> dict[str, Any]:
        if item["attempt_token"] == "stale":
            return {"status": 409, "error": {"code": "stale_attempt", "message": "old", "details": None}}
        return {"status": 200, "job_id": item["job_id"], "attempt": 1, "state": "running"}


@pytest.fixture
def fake() -> Iterator[tuple[MasterClient, Fake]]:
    script = Fake()

    with fake_master(script.answer) as url:
        c = MasterClient(url, shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=2)
        c.node_id, c.credential = "n-1", "secret"
        yield c, script


def test_several_starts_go_in_one_request_answered_per_item(fake: tuple[MasterClient, Fake]) -> None:
    c, script = fake
    outcomes = c.starts([("j-a", "good"), ("j-b", "stale"), ("j-c", "good")])
    assert [path for path, _ in script.requests] == ["/api/v1/nodes/n-1/starts"]
    assert outcomes[0] == {"job_id": "j-a", "attempt": 1, "state": "running"}
    assert isinstance(outcomes[1], MasterRejected) and outcomes[1].status == 409
    assert outcomes[1].code == "stale_attempt" and not outcomes[1].forgotten
    assert outcomes[2] == {"job_id": "j-c", "attempt": 1, "state": "running"}


def test_one_item_uses_the_single_route(fake: tuple[MasterClient, Fake]) -> None:
    c, script = fake
    [outcome] = c.results([("j-a", {"attempt_token": "good", "outcome": "succeeded"})])
    assert isinstance(outcome, dict)
    assert script.requests == [("/api/v1/jobs/j-a/result", {"attempt_token": "good", "outcome": "succeeded"})]


def test_a_master_without_batch_routes_gets_one_request_per_item(fake: tuple[MasterClient, Fake]) -> None:
    c, script = fake
    script.batches = False
    outcomes = c.results([("j-a", {"attempt_token": "good"}), ("j-b", {"attempt_token": "stale"})])
    assert isinstance(outcomes[0], dict) and isinstance(outcomes[1], MasterRejected)
    assert [p for p, _ in script.requests] == ["/api/v1/nodes/n-1/results", "/api/v1/jobs/j-a/result",
                                               "/api/v1/jobs/j-b/result"]
    c.starts([("j-a", "good"), ("j-b", "good")])  # remembered: no batch attempt any more
    assert [p for p, _ in script.requests][3:] == ["/api/v1/jobs/j-a/start", "/api/v1/jobs/j-b/start"]


def test_batches_are_cut_to_the_size_limits(fake: tuple[MasterClient, Fake],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    c, script = fake
    monkeypatch.setattr(client_module, "BATCH_ITEMS", 2)
    outcomes = c.starts([(f"j-{i}", "good") for i in range(5)])
    assert [len(body["starts"]) if "starts" in body else 1 for _, body in script.requests] == [2, 2, 1]
    assert [o["job_id"] for o in outcomes if isinstance(o, dict)] == [f"j-{i}" for i in range(5)]


def test_an_unreachable_master_raises_for_the_whole_batch() -> None:
    c = MasterClient("http://127.0.0.1:9", shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=1)
    c.node_id, c.credential = "n-1", "secret"
    with pytest.raises(MasterUnavailable):
        c.starts([("j-a", "good"), ("j-b", "good")])
