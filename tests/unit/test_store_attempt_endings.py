"""Attempts that end without a result of their own carry the contract's names in the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ffrtmp.contract import AttemptEnd, JobState
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Store

SPEC = {"input": "testsrc://?duration=1", "outputs": [{"url": "/srv/media/a.mp4", "preset": "copy"}]}


def _store(tmp_path: Path) -> tuple[Store, Path]:
    path = tmp_path / "ffrtmp.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    return store, path


def _node(store: Store, now: float) -> str:
    node, _, _ = store.register_node(name="n1", slots=1, encoders=[], hwaccels=[], labels={},
                                     ffmpeg_version="7", agent_version="1", live_s=30, now=now)
    return str(node["id"])


def _attempt_states(path: Path, job_id: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state FROM attempts WHERE job_id = ? ORDER BY attempt",
                            (job_id,)).fetchall()
    return [row[0] for row in rows]


def test_a_lease_that_runs_out_ends_the_attempt_as_expired(tmp_path: Path) -> None:
    store, path = _store(tmp_path)
    node_id = _node(store, now=1000.0)
    job = store.submit_job(SPEC, queue="default", priority="medium", capabilities=[], intent=None,
                           now=1000.0)
    assert len(store.claim(node_id, 1, lease_s=5, now=1001.0)) == 1
    assert store.expire_leases(now=1010.0) == [job["id"]]
    assert _attempt_states(path, job["id"]) == [AttemptEnd.EXPIRED]
    assert store.get_job(job["id"])["state"] == JobState.QUEUED


def test_a_retry_supersedes_the_lost_attempt(tmp_path: Path) -> None:
    store, path = _store(tmp_path)
    node_id = _node(store, now=1000.0)
    job = store.submit_job(SPEC, queue="default", priority="medium", capabilities=[], intent=None,
                           now=1000.0)
    (assignment,) = store.claim(node_id, 1, lease_s=30, now=1001.0)
    store.start(job["id"], node_id, assignment.attempt_token, now=1002.0)
    assert store.mark_offline(30, now=1100.0) == [job["id"]]
    assert store.get_job(job["id"])["state"] == JobState.LOST
    store.retry_job(job["id"])
    assert _attempt_states(path, job["id"]) == [AttemptEnd.SUPERSEDED]
