"""The agent delivers a ready result with the claim that refills its slot, and settles it from
that claim's reply; a master from before that refuses the field gets the result on its own
route in the same pass, as before.

A real ``MasterClient`` and ``AgentLoop`` against a loopback HTTP server playing the master
(no older master can run here); the job table holds one attempt whose workload has ended and
whose outputs have arrived (the media plane's answer is scripted: no outputs to upload).
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
from ffrtmp.wrapper.result import Result
from tests.fake_master import fake_master

JOB = "j-000000000001"
REFUSAL = {"error": {"code": "invalid", "message": "results: unknown field",
                     "details": {"field": "results"}}}


class Master:
    def __init__(self) -> None:
        self.knows_results = True
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((path.rsplit("/", 1)[-1], body))
        delivered = [{"status": 200, "job_id": r["job_id"], "attempt": 3, "state": "succeeded"}
                     for r in body.get("results", [])]
        if path.endswith("/claim"):
            if "results" in body and not self.knows_results:
                return 422, REFUSAL
            return 200, {"assignments": [], **({"results": delivered} if delivered else {})}
        if path.endswith("/result"):  # one result goes on the single route
            return 200, {"job_id": JOB, "attempt": 3, "state": "succeeded"}
        return 200, {"results": delivered}


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[AgentLoop, Master]]:
    master = Master()
    with fake_master(master.answer) as url:
        client = MasterClient(url, shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=5)
        client.node_id, client.credential = "n-1", "secret"
        table = JobTable(str(tmp_path / "state"), log_dir=str(tmp_path / "log"), log_level="INFO",
                         cancel_grace_s=5, media_roots=(str(tmp_path),), keep_delivered=10,
                         keep_delivered_s=3600, standby=0)
        done = LocalJob(JOB, 3, "token", {}, tmp_path / "state" / "jobs" / f"{JOB}.3")
        done.dir.mkdir(parents=True)
        Result(job_id=JOB, attempt=3, pid=1, mode="run", start_time="2026-12-04T00:00:00Z",
               end_time="2026-12-04T00:00:01Z", runtime_s=1.0, exit_code=0, signal=None,
               platform_sla=True, reason="").write(done.dir)
        table.jobs[done.key] = done
        arrived = SimpleNamespace(delivered=lambda job, spec, result, start: SimpleNamespace(
            result=result, outputs=[]), forget=lambda job: None)
        loop = AgentLoop(client=client, jobs=table, readiness=SimpleNamespace(),  # type: ignore[arg-type]
                         metrics=SimpleNamespace(results_delivered=SimpleNamespace(  # type: ignore[arg-type]
                             inc=lambda: None)), shutdown=Shutdown(), slots=2,
                         media_roots=(str(tmp_path),), media=arrived,  # type: ignore[arg-type]
                         steps=SimpleNamespace(forget=lambda job: None))  # type: ignore[arg-type]
        loop.can_claim = lambda: True  # type: ignore[method-assign]
        yield loop, master


def test_the_claim_that_refills_the_slot_delivers_its_result(farm: tuple[AgentLoop, Master]) -> None:
    loop, master = farm
    assert loop.claim_and_launch() == 0
    [(route, body)] = master.calls
    assert route == "claim" and [r["job_id"] for r in body["results"]] == [JOB]
    assert body["results"][0]["outcome"] == "succeeded"
    assert loop.jobs.undelivered() == []  # settled from the claim's reply
    assert loop.deliver_results() == 0 and len(master.calls) == 1  # nothing left to send


def test_a_master_that_refuses_results_in_claims_gets_them_on_their_route(
        farm: tuple[AgentLoop, Master]) -> None:
    loop, master = farm
    master.knows_results = False
    assert loop.claim_and_launch() == 0
    assert loop.deliver_results() == 1
    assert [(route, "results" in body) for route, body in master.calls] == [
        ("claim", True), ("claim", False), ("result", False)]
    assert master.calls[2][1]["outcome"] == "succeeded"
    assert loop.jobs.undelivered() == []
