"""A start whose reply never came keeps its job, unlaunched and listed in heartbeats, until the
master answers it; only that answer decides (confirmed: it begins; refused: it is forgotten).

A real ``MasterClient``, ``AgentLoop`` and ``JobTable`` against a real HTTP server on loopback
playing the master, so each answer is exactly what the test says; the launch itself is
recorded instead of spawning a wrapper (tests/integration/test_agent_start_unconfirmed.py
runs the same paths with a real master, agent and workload).
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
from ffrtmp.files import write_json_atomic
from ffrtmp.jobspec import JobSpec
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master

JOB = "j-000000000001"
STALE = {"error": {"code": "stale_attempt", "message": "attempt 1 is expired; do not run it"}}
UNAVAILABLE = {"error": {"code": "unavailable", "message": "restarting"}}


class Master:
    def __init__(self) -> None:
        self.start: tuple[int, dict[str, Any]] = (503, UNAVAILABLE)
        self.starts = 0
        self.heartbeats: list[list[dict[str, Any]]] = []

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path.endswith("/start"):
            self.starts += 1
            return self.start
        assert path.endswith("/heartbeat"), path
        self.heartbeats.append(body["running"])
        return 200, {"cancel": [], "drain": False}


class Farm:
    def __init__(self, url: str, master: Master, tmp_path: Path) -> None:
        self.master, self.tmp_path = master, tmp_path
        client = MasterClient(url, shutdown=Shutdown(), retry=RetryPolicy(total=0), timeout_s=5)
        client.node_id, client.credential = "n-1", "secret"
        self.shutdown = Shutdown()
        self.table = self.new_table()
        self.launched: list[tuple[str, int]] = []
        self.loop = AgentLoop(client=client, jobs=self.table,
                              readiness=SimpleNamespace(record_heartbeat=lambda status: None),  # type: ignore[arg-type]
                              metrics=SimpleNamespace(), shutdown=self.shutdown, slots=2,  # type: ignore[arg-type]
                              media_roots=(str(tmp_path),), media=SimpleNamespace(),  # type: ignore[arg-type]
                              steps=SimpleNamespace())  # type: ignore[arg-type]
        self.loop._begin = self.begin  # type: ignore[method-assign]

    def new_table(self) -> JobTable:
        return JobTable(str(self.tmp_path / "state"), log_dir=str(self.tmp_path / "log"),
                        log_level="INFO", cancel_grace_s=5, media_roots=(str(self.tmp_path),),
                        keep_delivered=10, keep_delivered_s=3600, standby=0)

    def begin(self, job: LocalJob, spec: JobSpec) -> None:
        assert not job.start_pending  # confirmed before anything of it begins
        self.launched.append(job.key)

    def claimed(self) -> LocalJob:
        spec = {"input": "testsrc://?duration=1",
                "outputs": [{"url": f"file://{self.tmp_path}/out.mp4", "preset": "copy"}]}
        assignment = {"job_id": JOB, "attempt": 1, "attempt_token": "token", "spec": spec}
        job, parsed = self.loop._prepare(assignment) or pytest.fail("refused")
        self.loop._start([(job, parsed)])
        return job

    def confirm_now(self) -> None:
        self.loop.next_confirm = 0.0
        self.loop.confirm_pending()


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    master = Master()
    with fake_master(master.answer) as url:
        yield Farm(url, master, tmp_path)


def test_an_unanswered_start_keeps_its_job_unlaunched_and_listed(farm: Farm) -> None:
    job = farm.claimed()
    assert job.start_pending and farm.table.pending() == [job] and farm.launched == []
    assert farm.table.working() == []  # nothing for a stopping agent to wait for
    assert farm.loop.free_slots() == 1  # it may run: it holds its slot meanwhile
    farm.loop.heartbeat()
    assert [(i["job_id"], i["attempt"]) for i in farm.master.heartbeats[-1]] == [(JOB, 1)]
    farm.table.poll()
    assert not job.finished  # not taken for a lost wrapper: none was ever launched


def test_a_confirmation_is_not_sent_again_before_its_time_nor_while_heartbeats_fail(
        farm: Farm) -> None:
    farm.claimed()
    farm.master.start = 200, {"job_id": JOB, "attempt": 1, "state": "running"}
    farm.loop.confirm_pending()  # within a heartbeat interval of the last try: not yet
    farm.loop.consecutive_failures = 1
    farm.loop.next_confirm = 0.0
    farm.loop.confirm_pending()  # the master is not answering heartbeats: not now
    assert farm.master.starts == 1 and farm.launched == []


def test_a_confirmed_start_begins_once(farm: Farm) -> None:
    job = farm.claimed()
    farm.master.start = 200, {"job_id": JOB, "attempt": 1, "state": "running"}
    farm.confirm_now()
    assert farm.launched == [(JOB, 1)] and not job.files.start_pending.exists()
    farm.confirm_now()
    assert farm.launched == [(JOB, 1)] and farm.master.starts == 2


def test_a_start_the_master_refuses_is_forgotten_never_run(farm: Farm) -> None:
    job = farm.claimed()
    farm.master.start = 409, STALE
    farm.confirm_now()
    assert farm.launched == [] and not job.dir.exists() and farm.table.pending() == []


def test_no_confirmation_goes_out_while_shutting_down(farm: Farm) -> None:
    job = farm.claimed()
    farm.shutdown.request("SIGTERM")
    farm.confirm_now()
    assert farm.master.starts == 1 and job.files.start_pending.exists()


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "claim-only"])
def test_a_restarted_agent_adopts_an_unconfirmed_job_as_pending(farm: Farm, marked: bool) -> None:
    """Marked: the start went unanswered. Claim only: the agent died during the start itself."""
    job = farm.claimed()
    if not marked:
        job.files.start_pending.unlink()
    again = farm.new_table()
    again.adopt()
    [adopted] = again.pending()
    assert adopted.key == job.key and adopted.files.start_pending.exists()
    again.poll()
    assert not adopted.finished


def test_a_launched_job_is_never_pending_again(farm: Farm) -> None:
    job = farm.claimed()
    write_json_atomic(job.files.launched, {"at": "now"})  # begun (by an older agent, say)
    assert not job.start_pending
    again = farm.new_table()
    again.adopt()
    assert again.pending() == []
