"""The agent's claims list the attempts whose results are on their way, and fall back when a
master from before ``ended`` refuses the field: then it delivers first, as it did before.

A real ``MasterClient`` and ``AgentLoop`` against a real HTTP server on loopback playing the
master; the job table holds one finished attempt whose result is not yet delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ffrtmp.agent.client import MasterClient, RetryPolicy
from ffrtmp.agent.jobs import JobTable, LocalJob
from ffrtmp.agent.loop import AgentLoop
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master

OLD_MASTER_REFUSAL = {"error": {"code": "invalid", "message": "ended: unknown field",
                                "details": {"field": "ended"}}}


class Master:
    def __init__(self) -> None:
        self.knows_ended = True
        self.claims: list[dict[str, Any]] = []

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert "claim_id" in body  # new per message (tests/unit/test_client_claim_id.py)
        self.claims.append({k: v for k, v in body.items() if k != "claim_id"})
        if "ended" in body and not self.knows_ended:
            return 422, OLD_MASTER_REFUSAL
        return 200, {"assignments": []}


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[AgentLoop, Master]]:
    master = Master()
    with fake_master(lambda _path, body: master.answer(body)) as url:
        yield from _farm(url, master, tmp_path)


def _farm(url: str, master: Master, tmp_path: Path) -> Iterator[tuple[AgentLoop, Master]]:
    client = MasterClient(url, shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=5)
    client.node_id, client.credential = "n-1", "secret"
    table = JobTable(str(tmp_path / "state"), log_dir=str(tmp_path / "log"), log_level="INFO",
                     cancel_grace_s=5, media_roots=(str(tmp_path),), keep_delivered=10,
                     keep_delivered_s=3600, standby=0)
    done = LocalJob("j-000000000001", 3, "token", {}, tmp_path / "state" / "jobs" / "j-000000000001.3")
    done.dir.mkdir(parents=True)
    (done.dir / "result.json").write_text("{}")  # its workload has ended; not delivered yet
    table.jobs[done.key] = done
    loop = AgentLoop(client=client, jobs=table, readiness=SimpleNamespace(),  # type: ignore[arg-type]
                     metrics=SimpleNamespace(), shutdown=Shutdown(), slots=2,  # type: ignore[arg-type]
                     media_roots=(str(tmp_path),), media=SimpleNamespace(),  # type: ignore[arg-type]
                     steps=SimpleNamespace())  # type: ignore[arg-type]
    loop.can_claim = lambda: True  # type: ignore[method-assign]
    yield loop, master


def test_a_claim_lists_the_results_on_their_way(farm: tuple[AgentLoop, Master]) -> None:
    loop, master = farm
    assert loop.claim_and_launch() == 0
    assert master.claims == [{"slots": 2, "wait_s": 0.0,
                              "ended": [{"job_id": "j-000000000001", "attempt": 3}]}]
    assert loop.refill_early


def test_a_master_that_refuses_ended_is_claimed_from_as_before(farm: tuple[AgentLoop, Master]) -> None:
    loop, master = farm
    master.knows_ended = False
    assert loop.claim_and_launch() == 0
    assert not loop.refill_early
    assert loop.claim_and_launch() == 0
    assert [("ended" in body) for body in master.claims] == [True, False]


def test_a_claim_with_nothing_ended_sends_no_ended(farm: tuple[AgentLoop, Master]) -> None:
    loop, master = farm
    loop.jobs.jobs.clear()
    assert loop.claim_and_launch() == 0
    assert master.claims == [{"slots": 2, "wait_s": 0.0}]
