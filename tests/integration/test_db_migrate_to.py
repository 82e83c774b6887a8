"""``ffrtmp db migrate-to``: a real SQLite farm (queued, running and succeeded jobs, a registered
node) moved into a throwaway PostgreSQL, then served from there by a real master: the same jobs,
and the node's credential and attempt token still work. Refusals name the problem and exit
non-zero: a master still running on the SQLite file, a target that already holds jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import MasterProcess, master_env, postgres_schema_url, start_master, stop_process
from tests.integration.test_master_process import register, submit

PASSWORD = "not-a-real-password-4711"
CLAIM_ID = "sqlite-farm-claim-1"  # the farm's one claim: its attempts remember it


def migrate(database: str, target: str, password_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffrtmp", "db", "migrate-to", target,
                           "--from", database, "--password-file", str(password_file)],
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True,
                          timeout=120, check=False)


def jobs_of(master: MasterProcess) -> dict[str, str]:
    reply = master.session().get(master.url + "/api/v1/jobs?limit=500", timeout=10)
    reply.raise_for_status()
    return {j["id"]: j["state"] for j in reply.json()["jobs"]}


def sqlite_farm(master: MasterProcess) -> tuple[str, requests.Session, dict[str, str]]:
    """Five jobs: one succeeded, one running (its token returned), three queued; one node."""
    ops = master.session()
    for _ in range(5):
        submit(master, ops)
    node_id, node = register(master, "node-1")
    claimed = node.post(f"{master.url}/api/v1/nodes/{node_id}/claim",
                        json={"slots": 2, "wait_s": 0, "claim_id": CLAIM_ID},
                        timeout=10).json()["assignments"]
    for item in claimed:
        node.post(f"{master.url}/api/v1/jobs/{item['job_id']}/start",
                  json={"attempt_token": item["attempt_token"]}, timeout=10).raise_for_status()
    done, running = claimed
    node.post(f"{master.url}/api/v1/jobs/{done['job_id']}/result",
              json={"attempt_token": done["attempt_token"], "outcome": "succeeded", "exit_code": 0},
              timeout=10).raise_for_status()
    return node_id, node, running


def test_a_sqlite_farm_moves_to_postgresql_and_is_served_from_there(tmp_path: Path,
                                                                    postgres_server: str) -> None:
    old_dir, new_dir = tmp_path / "sqlite", tmp_path / "pg"
    old_dir.mkdir()
    new_dir.mkdir()
    password_file = tmp_path / "db-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    target = postgres_schema_url(postgres_server)
    old = start_master(old_dir, master_env(old_dir), name="sqlite-master")
    database = old.env["FFRTMP_DATABASE"]
    try:
        node_id, node, running = sqlite_farm(old)
        before = jobs_of(old)
        assert sorted(before.values()) == ["queued", "queued", "queued", "running", "succeeded"]
        refused = migrate(database, target, password_file)
        assert refused.returncode != 0
        assert "is in use" in refused.stderr and "systemctl stop ffrtmp-master" in refused.stderr
    finally:
        stop_process(old.proc)

    moved = migrate(database, target, password_file)
    assert moved.returncode == 0, moved.stderr
    assert PASSWORD not in moved.stdout + moved.stderr
    copied = dict(line.split() for line in moved.stdout.splitlines() if line.startswith("  "))
    assert (copied["jobs"], copied["nodes"], copied["attempts"]) == ("5", "1", "2")

    again = migrate(database, target, password_file)
    assert again.returncode != 0 and "already holds 5 job(s) and 1 node(s)" in again.stderr

    new = start_master(new_dir, master_env(new_dir, FFRTMP_DATABASE=target), name="pg-master")
    try:
        assert jobs_of(new) == before
        served_by = new.url
        result = node.post(f"{served_by}/api/v1/jobs/{running['job_id']}/result",
                           json={"attempt_token": running["attempt_token"], "outcome": "succeeded",
                                 "exit_code": 0}, timeout=10)
        assert result.status_code == 200, result.text
        resent = node.post(f"{served_by}/api/v1/nodes/{node_id}/claim",
                           json={"slots": 1, "wait_s": 0, "claim_id": CLAIM_ID}, timeout=10)
        # the claim ids came along: the farm's claim sent again is known, and claims nothing
        assert resent.status_code == 200 and resent.json()["assignments"] == [], resent.text
        claimed = node.post(f"{served_by}/api/v1/nodes/{node_id}/claim",
                            json={"slots": 1, "wait_s": 0}, timeout=10)
        assert claimed.status_code == 200, claimed.text
        [item] = claimed.json()["assignments"]
        assert before[item["job_id"]] == "queued"
        fresh = submit(new, new.session())  # the copied keys' sequence continues after them
        assert jobs_of(new)[fresh] == "queued"
        metrics = requests.get(new.metrics_url + "/metrics", timeout=10).text
        assert 'ffrtmp_jobs_by_state{state="succeeded"} 2.0' in metrics
        assert 'ffrtmp_jobs_by_state{state="queued"} 3.0' in metrics  # three, one claimed, one new
        assert 'ffrtmp_jobs_by_state{state="assigned"} 1.0' in metrics
    finally:
        stop_process(new.proc)


def test_refusals_name_the_problem(tmp_path: Path, postgres_server: str) -> None:
    password_file = tmp_path / "db-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    target = postgres_schema_url(postgres_server)
    missing = migrate(f"sqlite:///{tmp_path / 'none.db'}", target, password_file)
    assert missing.returncode != 0 and f"no SQLite database at {tmp_path / 'none.db'}" in missing.stderr
    with_password = migrate(f"sqlite:///{tmp_path / 'none.db'}",
                            target.replace("ffrtmp@", f"ffrtmp:{PASSWORD}@"), password_file)
    assert with_password.returncode == 2 and "--password-file" in with_password.stderr
    assert PASSWORD not in with_password.stderr
    password_file.chmod(0o644)
    open_file = migrate(f"sqlite:///{tmp_path / 'none.db'}", target, password_file)
    assert open_file.returncode != 0 and "--password-file" in open_file.stderr
    assert PASSWORD not in open_file.stderr


def test_the_copy_knows_every_table_of_the_schema(tmp_path: Path) -> None:
    """A migration that adds a table must teach the copy about it (else migrate-to refuses)."""
    import sqlite3

    from ffrtmp.master.store.sqlite import SqliteStore
    from ffrtmp.master.store.transfer import REBUILT, TABLES

    store = SqliteStore(str(tmp_path / "master.db"))
    store.migrate()
    store.close()
    with sqlite3.connect(tmp_path / "master.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names - {"sqlite_sequence"} == set(TABLES) | set(REBUILT) - {"sqlite_sequence"}


def test_a_copy_that_fails_its_check_commits_nothing(tmp_path: Path, postgres_server: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from ffrtmp.master.store import transfer
    from ffrtmp.master.store.sqlite import SqliteStore

    source = SqliteStore(str(tmp_path / "master.db"))
    source.migrate()
    spec = {"input": "testsrc://?duration=2", "outputs": [{"url": "file:///srv/media/x.mp4",
                                                           "preset": "h264-480p"}]}
    source.submit_job(spec, queue="default", priority="medium", capabilities=[], intent=None)
    source.register_node(name="node-1", slots=1, encoders=[], hwaccels=[], labels={},
                         ffmpeg_version="", agent_version="", live_s=30)
    source.close()
    target = postgres_schema_url(postgres_server)

    def refuse(*args: object) -> None:
        raise transfer.MigrateError("jobs: 1 row(s) in the source, 0 in the target")

    monkeypatch.setattr(transfer, "_verify", refuse)
    with pytest.raises(transfer.MigrateError):
        transfer.migrate_to(str(tmp_path / "master.db"), target)
    with psycopg.connect(target) as conn:
        assert [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone() for t in ("jobs", "nodes")] \
            == [(0,), (0,)]
    monkeypatch.undo()
    copied = transfer.migrate_to(str(tmp_path / "master.db"), target)
    assert (copied["jobs"], copied["nodes"], copied["transitions"]) == (1, 1, 1)
