"""A database that cannot serve answers 503 with a named code, on SQLite and PostgreSQL alike;
offline detection waits one node timeout after its runner could last hear heartbeats."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ffrtmp import config
from ffrtmp.master.scheduler import DutyLoop, run_duties
from ffrtmp.master.store.postgres import PostgresStore
from ffrtmp.master.store.sqlite import SqliteStore
from ffrtmp.master.store.sqlstore import SqlStore
from ffrtmp.settings import MasterSettings
from tests.conftest import Api, make_app, master_env, postgres_schema_url, register
from tests.helpers import wait_until
from tests.integration.test_store_disk_full import fill
from tests.unit.test_api_lifecycle import SPEC, claim, submit

SQLITE = "sqlite:///"


def store_for(database: str, **kw: Any) -> SqlStore:
    if database.startswith(SQLITE):
        return SqliteStore(database[len(SQLITE):], **kw)
    return PostgresStore(database, **kw)


@contextlib.contextmanager
def write_lock(database: str) -> Iterator[None]:
    """Another client holds the lock every write of the store needs."""
    if database.startswith(SQLITE):
        conn = sqlite3.connect(database[len(SQLITE):], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg.connect(database, autocommit=True)  # type: ignore[assignment]
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE jobs, nodes, duties IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def error_code(reply: Any) -> str:
    return reply.get_json()["error"]["code"]


@pytest.fixture
def busy_store(settings: MasterSettings) -> Iterator[SqlStore]:
    store = store_for(settings.database, busy_timeout_ms=300)
    yield store
    store.close()


def test_a_locked_database_answers_503_store_busy_then_serves(settings: MasterSettings,
                                                              busy_store: SqlStore) -> None:
    api = Api(make_app(settings, busy_store).test_client())
    with write_lock(settings.database):
        refused = api.post("/api/v1/jobs", json=SPEC, expect=503)
        assert error_code(refused) == "store_busy"
        assert api.get("/api/v1/jobs").get_json()["jobs"] == []  # reads still answer
    submit(api)


def test_a_duty_pass_the_database_refuses_restarts_the_offline_grace(
        settings: MasterSettings, busy_store: SqlStore) -> None:
    busy_store.migrate()
    loop = DutyLoop(busy_store, settings)
    loop.start()
    try:
        started = loop.listening_since
        with write_lock(settings.database):
            wait_until(lambda: loop.listening_since > started, 30, "a refused duty pass")
        released = time.time()
        passed_after(settings.database, released)
        refused_at = loop.listening_since
        passed_after(settings.database, time.time())
        # passes that work leave the grace where the last refusal put it
        assert started < loop.listening_since == refused_at < released
    finally:
        loop.stop()


def passed_after(database: str, moment: float) -> None:
    """Wait for a duty pass that began after ``moment`` and got its write through."""
    def next_run() -> float:
        sql = "SELECT next_run_at FROM duties WHERE name = 'leases'"
        if database.startswith(SQLITE):
            with contextlib.closing(sqlite3.connect(database[len(SQLITE):])) as conn:
                return conn.execute(sql).fetchone()[0]
        with psycopg.connect(database) as pg:
            return pg.execute(sql).fetchone()[0]  # type: ignore[index]

    wait_until(lambda: next_run() > moment + 0.1, 30, "a duty pass that worked")


def test_offline_detection_waits_one_node_timeout_after_listening_resumes(api: Api, app: Any) -> None:
    settings, store = app.extensions["ffrtmp"].settings, app.extensions["ffrtmp"].store
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    now = time.time() + 10 * settings.node_timeout  # long after the node's last heartbeat
    assert "lost" not in run_duties(store, settings, now, listening_since=now - 1)
    assert api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]["status"] == "online"
    later = now + settings.node_timeout
    assert run_duties(store, settings, later, listening_since=now - 1)["lost"] == [job_id]
    assert api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]["status"] == "offline"


@contextlib.contextmanager
def read_only(database: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """Yields a database URL that refuses writes, and a function that makes it writable again
    (None where the refusal is fixed): a tmpfs remounted read-only, or a read-only PostgreSQL
    session like a standby's."""
    if not database.startswith(SQLITE):
        yield database + "%20-cdefault_transaction_read_only%3Don", None
        return
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "ro"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        yield f"{SQLITE}{disk / 'master.db'}", lambda mode: subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(disk)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_database_answers_503_store_read_only(tmp_path: Path, database: str) -> None:
    with read_only(database, tmp_path) as (url, remount):
        writable = url if remount else database
        settings = config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=url))
        migrator = store_for(writable)
        migrator.migrate()
        migrator.close()  # left to the collector, its file descriptors can keep the remount busy
        store = store_for(url)
        client = make_app(settings, store).test_client()
        api = Api(client)
        if remount:  # a running master's connections stop working when its filesystem does
            store.close()
            remount("ro")
        refused = api.post("/api/v1/jobs", json=SPEC, expect=503)
        assert error_code(refused) == "store_read_only"
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database_writes"].startswith("error: store_read_only: ")
        if remount:
            remount("rw")
            submit(api)  # and it works again without a restart
        store.close()


@pytest.fixture
def small_tablespace(postgres_server: str) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL schema whose tables live on a small tmpfs; yields its URL and the tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    base = Path(tempfile.mkdtemp(prefix="ffrtmp-pg-disk-"))  # the server's user must reach it
    base.chmod(0o755)
    disk = base / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    name = "ts_" + secrets.token_hex(4)
    url = postgres_schema_url(postgres_server)
    try:
        shutil.chown(disk, "postgres", "postgres")
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{disk}'")
        yield url + f"%20-cdefault_tablespace%3D{name}", disk
        with psycopg.connect(url, autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.execute(f"DROP TABLESPACE {name}")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_full_postgres_disk_answers_503_store_full_then_serves(tmp_path: Path,
                                                                small_tablespace: tuple[str, Path]) -> None:
    url, disk = small_tablespace
    settings = config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=url))
    store = store_for(url)
    api = Api(make_app(settings, store).test_client())
    filler = fill(disk)
    # writes that fit in pages already allocated succeed; the first that needs a new one fails
    for _ in range(2000):
        reply = api.post("/api/v1/jobs", json=SPEC, expect=None)
        if reply.status_code != 201:
            break
    assert reply.status_code == 503, reply.get_json()
    assert error_code(reply) == "store_full"
    filler.unlink()
    submit(api)
    store.close()


def test_a_lost_postgres_connection_answers_503_then_reconnects(postgres_server: str,
                                                                tmp_path: Path) -> None:
    """What a server restart or a failover does to the connections a master holds."""
    url = postgres_schema_url(postgres_server)
    settings = config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=url))
    app = make_app(settings)
    api = Api(app.test_client())
    submit(api)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = 'ffrtmp-master'")
    lost = api.get("/api/v1/jobs", expect=503)
    assert error_code(lost) == "store_unavailable"
    assert len(api.get("/api/v1/jobs").get_json()["jobs"]) == 1
    app.extensions["ffrtmp"].store.close()
