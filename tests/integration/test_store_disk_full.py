"""A full or read-only database: a real master answers 503 with a named code, turns unready,
and takes writes again as soon as the database can, without a restart."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import MasterProcess, master_env, postgres_schema_url, start_master, stop_process
from tests.helpers import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
SPEC = {"input": "testsrc://?duration=1&size=160x120&rate=10", "intent": "disk full"}


def spec(master: MasterProcess, name: str) -> dict[str, Any]:
    return {**SPEC, "outputs": [{"url": f"file://{master.env['FFRTMP_MEDIA_ROOTS']}/{name}.mp4",
                                 "preset": "h264-480p"}]}


def post_job(master: MasterProcess, name: str) -> requests.Response:
    return master.session().post(master.url + "/api/v1/jobs", json=spec(master, name), timeout=30)


def ready(master: MasterProcess) -> requests.Response:
    return requests.get(master.url + "/ready", timeout=30)


def fill(directory: Path) -> Path:
    """Write zeros until the filesystem has no block left."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for block in (2**20, 2**12, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * block):
                    pass
    with pytest.raises(OSError) as full:
        (directory / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "db"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def assert_refused_then_unready(master: MasterProcess, code: str) -> None:
    # SQLite may still fit a few commits into WAL space it already holds; the first write that
    # needs room is refused
    for attempt in range(50):  # all of them fit in one page of the job list below
        refused = post_job(master, f"refused-{attempt}")
        if refused.status_code != 201:
            break
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == code
    master.extra["refused"] = f"refused-{attempt}.mp4"
    not_ready = wait_until(lambda: (r := ready(master)).status_code == 503 and r.json(), 30,
                           "/ready 503")
    assert not_ready["status"] == "not_ready"
    assert not_ready["checks"]["database_writes"].startswith(f"error: {code}: ")


def assert_recovered(master: MasterProcess, pid: int) -> None:
    assert post_job(master, "after").status_code == 201
    wait_until(lambda: ready(master).status_code == 200, 30, "/ready 200 again")
    assert master.proc.pid == pid and master.proc.poll() is None  # no restart was needed
    jobs = master.session().get(master.url + "/api/v1/jobs", timeout=30).json()["jobs"]
    outputs = {j["spec"]["outputs"][0]["url"].rsplit("/", 1)[1] for j in jobs}
    assert {"after.mp4", "before.mp4"} <= outputs
    assert master.extra["refused"] not in outputs  # the refused write left nothing behind


@needs_root
@pytest.mark.slow
def test_a_full_disk_answers_503_store_full_and_recovers_without_restart(tmp_path: Path,
                                                                         small_disk: Path) -> None:
    master = start_master(tmp_path, master_env(tmp_path,
                                               FFRTMP_DATABASE=f"sqlite:///{small_disk / 'master.db'}"))
    try:
        assert post_job(master, "before").status_code == 201
        filler = fill(small_disk)
        assert_refused_then_unready(master, "store_full")
        assert "the database refuses requests (store_full)" in master.output()
        filler.unlink()
        assert_recovered(master, master.proc.pid)
        assert "the database takes writes again" in master.output()
    finally:
        stop_process(master.proc)
        print(master.output())


def set_read_only(server: str, on: bool) -> None:
    """What a failover to a standby looks like to the master: every transaction is read-only."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
        conn.execute("SELECT pg_reload_conf()")
    # the server signals every backend once it has reloaded, before it starts a new one
    want = "on" if on else "off"
    wait_until(lambda: _show_read_only(server) == want, 30, f"default_transaction_read_only={want}")


def _show_read_only(server: str) -> str:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        return conn.execute("SHOW default_transaction_read_only").fetchone()[0]


@pytest.mark.slow
def test_a_read_only_postgres_answers_503_store_read_only_and_recovers(tmp_path: Path,
                                                                       postgres_server: str) -> None:
    master = start_master(tmp_path, master_env(tmp_path,
                                               FFRTMP_DATABASE=postgres_schema_url(postgres_server)))
    try:
        assert post_job(master, "before").status_code == 201
        set_read_only(postgres_server, True)
        try:
            assert_refused_then_unready(master, "store_read_only")
        finally:
            set_read_only(postgres_server, False)
        assert_recovered(master, master.proc.pid)
    finally:
        stop_process(master.proc)
        print(master.output())
