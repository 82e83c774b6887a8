"""A master logs in to PostgreSQL with the password in FFRTMP_DATABASE_PASSWORD_FILE, as deployed.

The shared ``postgres_server`` cluster trusts every local connection, so it cannot tell a
password from none. These tests boot a throwaway cluster of their own whose TCP connections
need ``scram-sha-256`` (``initdb --auth-host=scram-sha-256``, ``password_encryption`` at its
default, scram), with a least-privilege role owning one database, as ffrtmp_postgres makes it:
the master gets in with the file's password only, and the password shows up nowhere else.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from tests import pg_cluster
from tests.conftest import master_env, start_master, stop_process
from tests.integration.test_master_process import submit
from tests.processes import free_port

PASSWORD = "Scram-only-" + "k3y" * 10
ROLE = "farm"


@dataclass(frozen=True)
class ScramCluster:
    port: int
    socket_dir: Path
    log: Path

    @property
    def url(self) -> str:
        """The URL a master is given: a user, no password."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{ROLE}"


@pytest.fixture(scope="module")
def scram_cluster() -> Iterator[ScramCluster]:
    """Its own cluster (the shared one is trust-only): TCP logins need a SCRAM password."""
    if pg_cluster.bindir() is None:
        pytest.fail("PostgreSQL server binaries are required (Debian: postgresql)")
    with pg_cluster.running(free_port(), auth_host="scram-sha-256") as cluster:
        # the superuser over the socket (trust); the role as ffrtmp_postgres creates it
        with psycopg.connect(host=str(cluster.data), port=cluster.port, user="ffrtmp", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD "
                         f"'{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
            conn.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {ROLE} FROM PUBLIC")
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,)).fetchone()
        assert stored and str(stored[0]).startswith("SCRAM-SHA-256$"), "a SCRAM verifier is stored"
        yield ScramCluster(cluster.port, cluster.data, cluster.data / "server.log")


def _password_file(directory: Path, text: str, mode: int = 0o640) -> Path:
    path = directory / "database-password"
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def _run_master(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A master that is expected to stop at start: its exit status and everything it said."""
    return subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, check=False)


def _process_texts(pid: int) -> list[str]:
    """Environment and command line of a process and of its children (the gunicorn workers)."""
    parent = psutil.Process(pid)
    texts = []
    for proc in [parent, *parent.children(recursive=True)]:
        texts.append(" ".join(proc.cmdline()))
        texts.append(" ".join(f"{k}={v}" for k, v in proc.environ().items()))
    return texts


def test_a_master_logs_in_with_the_password_file_and_shows_the_password_nowhere(
        tmp_path: Path, scram_cluster: ScramCluster) -> None:
    env = master_env(tmp_path, FFRTMP_DATABASE=scram_cluster.url, FFRTMP_LOG_LEVEL="debug",
                     FFRTMP_DATABASE_PASSWORD_FILE=str(_password_file(tmp_path, PASSWORD)))
    master = start_master(tmp_path, env)
    try:
        ops = master.session()
        job = submit(master, ops)
        assert ops.get(f"{master.url}/api/v1/jobs/{job}", timeout=10).json()["job"]["state"] == "queued"
        texts = _process_texts(master.proc.pid)
        assert len(texts) >= 4  # the arbiter and at least one worker
        assert all(PASSWORD not in text for text in texts)
        assert any("FFRTMP_DATABASE_PASSWORD_FILE=" in text for text in texts)
    finally:
        stop_process(master.proc)
    logs = [master.output(),
            *(p.read_text(errors="replace") for p in (tmp_path / "log").rglob("*") if p.is_file())]
    assert "database postgresql://***@127.0.0.1" in master.output()
    assert all(PASSWORD not in text for text in logs)
    # the server saw the role log in over TCP, which needs its password
    with psycopg.connect(host=str(scram_cluster.socket_dir), port=scram_cluster.port, user="ffrtmp",
                         dbname=ROLE) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'jobs'").fetchone()
    assert owner == (ROLE,)


def test_without_the_password_file_the_server_refuses_the_master(tmp_path: Path,
                                                                 scram_cluster: ScramCluster) -> None:
    run = _run_master(master_env(tmp_path, FFRTMP_DATABASE=scram_cluster.url))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "cannot open the database postgresql://***@127.0.0.1" in run.stdout
    assert "no password supplied" in run.stdout


def test_a_wrong_password_is_refused_and_never_printed(tmp_path: Path, scram_cluster: ScramCluster) -> None:
    wrong = "Not-the-" + "p4ss" * 8
    env = master_env(tmp_path, FFRTMP_DATABASE=scram_cluster.url,
                     FFRTMP_DATABASE_PASSWORD_FILE=str(_password_file(tmp_path, wrong)))
    run = _run_master(env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f'password authentication failed for user "{ROLE}"' in run.stdout
    assert wrong not in run.stdout + run.stderr
    assert wrong not in "".join(p.read_text(errors="replace") for p in (tmp_path / "log").rglob("*.log"))


@pytest.mark.parametrize(("mode", "reason"), [(0o644, "open to other users"), (0o000, None)])
def test_a_bad_password_file_stops_the_master_at_start_naming_the_key(
        tmp_path: Path, scram_cluster: ScramCluster, mode: int, reason: str | None) -> None:
    path = _password_file(tmp_path, PASSWORD, mode)
    if reason is None:  # unreadable: root reads anything, so make it a directory instead
        path.unlink()
        path.mkdir()
        reason = "cannot read the password file"
    run = _run_master(master_env(tmp_path, FFRTMP_DATABASE=scram_cluster.url,
                                 FFRTMP_DATABASE_PASSWORD_FILE=str(path)))
    assert run.returncode == 78, run.stdout + run.stderr
    said = run.stdout + run.stderr
    assert f"FFRTMP_DATABASE_PASSWORD_FILE='{path}'" in said and reason in said
    assert PASSWORD not in said
