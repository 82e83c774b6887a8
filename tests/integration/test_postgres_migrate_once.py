"""Masters that start together on a fresh PostgreSQL schema migrate it once.

Each master migrates before it serves (``serve``), inside a transaction that first takes the
advisory lock ``postgres.MIGRATION_LOCK``. Two masters booting at the same moment (site.yml
restarts them one at a time, but a reboot or an operator starts them together) must not both
create the tables: one applies every migration, the other finds the schema in force.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from ffrtmp.master.store.postgres import MIGRATION_LOCK, PostgresStore
from tests.conftest import master_env, postgres_schema_url, start_master, stop_process
from tests.processes import MasterProcess, await_ready, wait_until

APPLIED = "applied schema migration"


def _waiting_for_the_lock(server: str) -> int:
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                           " AND objid::bigint = %s", (MIGRATION_LOCK & 0xFFFFFFFF,)).fetchone()
    return int(row[0]) if row else 0


def _start_two(tmp_path: Path, database: str) -> list[MasterProcess]:
    masters = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        env = master_env(directory, FFRTMP_DATABASE=database)
        masters.append(start_master(directory, env, wait_ready=False, name=f"master-{name}"))
    return masters


def test_two_masters_started_together_migrate_a_fresh_schema_once(tmp_path: Path,
                                                                   postgres_server: str) -> None:
    database = postgres_schema_url(postgres_server)
    latest = len(PostgresStore.MIGRATIONS)
    # Hold the migration lock so that both masters are inside their migration, waiting on it, at
    # the same time: then released, they race for it with nothing in between.
    holder = psycopg.connect(postgres_server, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    masters: list[MasterProcess] = []
    try:
        masters = _start_two(tmp_path, database)
        wait_until(lambda: _waiting_for_the_lock(postgres_server) == 2, 30,
                   "both masters waiting for the migration lock", interval=0.1)
        assert all(APPLIED not in m.output() for m in masters)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        for master in masters:
            await_ready(master, 60, master.log_path.stem)
        applied = [m.output().count(APPLIED) for m in masters]
        assert sorted(applied) == [0, latest], [m.output() for m in masters]
        for master in masters:
            assert f"at schema version {latest}" in master.output()
            assert "Traceback" not in master.output(), master.output()
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(*), max(version) FROM schema_version").fetchone() == (1, latest)
    finally:
        holder.close()
        for master in masters:
            stop_process(master.proc)
