"""The agent's progress reports: at most one a second, only figures that changed, and a
failure that only delays the next one (the clock is the test's, as duties take ``now``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ffrtmp.agent.client import MasterRejected, MasterUnavailable
from ffrtmp.agent.progress_reports import AWAY_S, NO_ROUTE_S, ProgressReports


@dataclass
class Job:
    job_id: str
    attempt: int = 1

    @property
    def key(self) -> tuple[str, int]:
        return self.job_id, self.attempt


@dataclass
class Jobs:
    figures: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def running(self) -> list[Job]:
        return [Job(job_id) for job_id in self.figures]

    def progress(self, job: Job) -> dict[str, Any] | None:
        return self.figures[job.job_id]


@dataclass
class Client:
    node_id: str | None = "n-1"
    sent: list[list[dict[str, Any]]] = field(default_factory=list)
    fail: Exception | None = None

    def report_progress(self, running: list[dict[str, Any]]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.sent.append(running)
        return {"stored": len(running)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reports(jobs: Jobs, client: Client, clock: Clock) -> ProgressReports:
    return ProgressReports(client, jobs, clock=clock)  # type: ignore[arg-type]


def test_one_report_a_second_with_only_the_figures_that_changed() -> None:
    jobs = Jobs({"j-a": {"percent": 1.0}, "j-b": {"percent": 5.0}, "j-c": None})
    client, clock = Client(), Clock()
    sender = reports(jobs, client, clock)
    assert sender.send_due() == 2  # j-c has no figures yet
    jobs.figures["j-a"] = {"percent": 2.0}
    clock.now += 0.5
    assert sender.send_due() == 0  # not a second yet
    clock.now += 0.5
    assert sender.send_due() == 1
    assert [[i["job_id"] for i in r] for r in client.sent] == [["j-a", "j-b"], ["j-a"]]
    assert client.sent[1] == [{"job_id": "j-a", "attempt": 1, "progress": {"percent": 2.0}}]
    clock.now += 1
    assert sender.send_due() == 0 and len(client.sent) == 2  # nothing changed: no request


def test_a_master_away_delays_the_next_report_and_nothing_is_lost() -> None:
    jobs, client, clock = Jobs({"j-a": {"percent": 1.0}}), Client(fail=MasterUnavailable("down")), Clock()
    sender = reports(jobs, client, clock)
    assert sender.send_due() == 0
    client.fail = None
    clock.now += AWAY_S - 0.1
    assert sender.send_due() == 0 and not client.sent
    clock.now += 0.1
    assert sender.send_due() == 1  # the figures never delivered go now


def test_a_master_without_the_route_is_asked_again_only_much_later() -> None:
    jobs, clock = Jobs({"j-a": {"percent": 1.0}}), Clock()
    client = Client(fail=MasterRejected(404, "not_found", "no such route"))
    sender = reports(jobs, client, clock)
    assert sender.send_due() == 0
    client.fail = None
    clock.now += NO_ROUTE_S - 1
    assert sender.send_due() == 0
    clock.now += 1
    assert sender.send_due() == 1


def test_an_unregistered_agent_sends_nothing() -> None:
    client = Client(node_id=None)
    assert reports(Jobs({"j-a": {"percent": 1.0}}), client, Clock()).send_due() == 0
    assert not client.sent
