"""What a no-op job costs the SQLite store through the API, counted statement by statement.

The serialised writer bounds the farm's dispatch rate (``docs/performance.md``), so every
statement a job's lifecycle runs is a cost every job pays. The counts are exact: SQLite
reports each statement it runs (``set_trace_callback``), reads and writes alike.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ffrtmp import config
from ffrtmp.master.store.sqlite import SqliteStore
from tests.conftest import Api, make_app, master_env, register

SPEC = {"input": "testsrc://?duration=2&size=320x240&rate=25",
        "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}]}
JOBS = 8
# measured when written: 20.5 (29.4 before the result check read only steps, the pick carried
# the spec and batch items ran without savepoints); a change that adds a statement to every
# job's path fails here and shows the most frequent ones
BUDGET_PER_JOB = 21


class CountingStore(SqliteStore):
    """The SQLite store, every statement of its connections counted while ``counting``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.counting = False
        self.statements: Counter[str] = Counter()

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.set_trace_callback(self._seen)
        return conn

    def _seen(self, statement: str) -> None:
        if self.counting:
            self.statements[" ".join(statement.split())[:60]] += 1


@pytest.fixture
def counted(tmp_path: Path) -> tuple[Api, CountingStore]:
    settings = config.load("master", {}, master_env(tmp_path))
    store = CountingStore(str(tmp_path / "counted.db"))
    return Api(make_app(settings, store).test_client()), store


def lifecycle(api: Api, node: Api, node_id: str) -> None:
    """``JOBS`` jobs submitted in one batch, claimed at once, started and finished in batches."""
    reply = api.post("/api/v1/jobs/batch", json={"jobs": [SPEC] * JOBS}, expect=200).get_json()
    assert [item["status"] for item in reply["jobs"]] == [201] * JOBS
    claimed: list[dict[str, Any]] = node.post(f"/api/v1/nodes/{node_id}/claim",
                                              json={"slots": JOBS}).get_json()["assignments"]
    assert len(claimed) == JOBS
    tokens = [{"job_id": a["job_id"], "attempt_token": a["attempt_token"]} for a in claimed]
    node.post(f"/api/v1/nodes/{node_id}/starts", json={"starts": tokens})
    node.post(f"/api/v1/nodes/{node_id}/results", json={"results": [
        {**t, "outcome": "succeeded", "exit_code": 0} for t in tokens]})
    done = api.get("/api/v1/jobs?state=succeeded&limit=500").get_json()["jobs"]
    assert {a["job_id"] for a in claimed} <= {j["id"] for j in done}


def test_a_jobs_lifecycle_stays_within_its_statement_budget(
        counted: tuple[Api, CountingStore]) -> None:
    api, store = counted
    node_id, node = register(api, slots=JOBS)
    lifecycle(api, node, node_id)  # warm: the first claim and commit read what later ones keep
    store.counting = True
    lifecycle(api, node, node_id)
    store.counting = False
    listing = sum(n for s, n in store.statements.items() if "ORDER BY seq DESC" in s)
    per_job = (sum(store.statements.values()) - listing) / JOBS
    assert per_job <= BUDGET_PER_JOB, store.statements.most_common(12)


def test_checking_results_reads_only_their_steps_once_per_request(
        counted: tuple[Api, CountingStore]) -> None:
    """A result's plan check used to read the whole job view (its row, its node's name, every
    timestamp formatted) to learn the job's step: two statements per result. The results of a
    request now have their steps read together, and nothing else of theirs before the store."""
    api, store = counted
    node_id, node = register(api, slots=JOBS)
    lifecycle(api, node, node_id)
    store.counting = True
    lifecycle(api, node, node_id)
    seen = store.statements
    assert sum(n for s, n in seen.items() if s.startswith("SELECT id, step FROM jobs")) == 1, seen
    names = sum(n for s, n in seen.items() if s.startswith("SELECT id, name FROM nodes"))
    assert names <= 2, seen.most_common(12)  # the submit's views and the listing's
