"""An agent lists the attempts whose start it could not get confirmed in its heartbeats (the
master may have committed the start whose reply was lost). Listed, an ``assigned`` attempt
changes nothing: its lease still decides it; a committed (``running``) one is kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ffrtmp.contract import AttemptEnd, JobState
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Store

SPEC = {"input": "testsrc://?duration=1", "outputs": [{"url": "/srv/media/a.mp4", "preset": "copy"}]}


def _store(tmp_path: Path) -> tuple[Store, Path, str]:
    path = tmp_path / "ffrtmp.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    node, _, _ = store.register_node(name="n1", slots=1, encoders=[], hwaccels=[], labels={},
                                     ffmpeg_version="7", agent_version="1", live_s=30, now=1000.0)
    return store, path, str(node["id"])


def _attempt_states(path: Path, job_id: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state FROM attempts WHERE job_id = ? ORDER BY attempt",
                            (job_id,)).fetchall()
    return [row[0] for row in rows]


def test_an_assigned_attempt_listed_in_heartbeats_still_expires_with_its_lease(tmp_path: Path) -> None:
    store, path, node_id = _store(tmp_path)
    job = store.submit_job(SPEC, queue="default", priority="medium", capabilities=[], intent=None,
                           now=1000.0)
    assert len(store.claim(node_id, 1, lease_s=5, now=1001.0)) == 1
    listed = [{"job_id": job["id"], "attempt": 1, "progress": None}]
    for now in (1002.0, 1004.0, 1020.0):
        reply = store.heartbeat(node_id, listed, unlisted_after_s=2, now=now)
        assert reply == {"cancel": [], "drain": False}
    assert store.get_job(job["id"])["state"] == JobState.ASSIGNED
    assert store.expire_leases(now=1021.0) == [job["id"]]
    assert _attempt_states(path, job["id"]) == [AttemptEnd.EXPIRED]
    store.heartbeat(node_id, listed, unlisted_after_s=2, now=1022.0)  # listed still: harmless
    assert store.get_job(job["id"])["state"] == JobState.QUEUED


def test_a_committed_start_listed_while_unconfirmed_is_not_ended_lost(tmp_path: Path) -> None:
    store, path, node_id = _store(tmp_path)
    job = store.submit_job(SPEC, queue="default", priority="medium", capabilities=[], intent=None,
                           now=1000.0)
    (assignment,) = store.claim(node_id, 1, lease_s=5, now=1001.0)
    store.start(job["id"], node_id, assignment.attempt_token, now=1002.0)  # its reply was lost
    listed = [{"job_id": job["id"], "attempt": 1, "progress": None}]
    for now in (1003.0, 1010.0, 1030.0):
        store.heartbeat(node_id, listed, unlisted_after_s=2, now=now)
    assert store.expire_leases(now=1031.0) == []
    assert _attempt_states(path, job["id"]) == [JobState.RUNNING]
    again = store.start(job["id"], node_id, assignment.attempt_token, now=1032.0)
    assert again["state"] == JobState.RUNNING  # the start sent again is answered as the first
