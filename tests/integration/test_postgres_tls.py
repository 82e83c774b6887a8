"""A master talks to PostgreSQL over TLS when its URL says so, and stops at start when it cannot.

With a certificate, ``ffrtmp_postgres`` turns ``ssl`` on and lets the masters in over ``hostssl``
lines only, with SCRAM passwords; the masters' URL carries ``sslmode=verify-full`` and the
CA in ``sslrootcert``. These tests boot such a cluster of their own (``pg_cluster``'s ``tls``):
a master on it serves, and PostgreSQL itself reports its sessions encrypted; a master without
TLS, or trusting another CA, is refused and says so in one line naming the database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests import pg_cluster
from tests.conftest import master_env, start_master, stop_process
from tests.integration.test_master_process import submit
from tests.processes import free_port, wait_until

PASSWORD = "Tls-and-scram-" + "s3cr" * 8
ROLE = "farm"


@dataclass(frozen=True)
class TlsCluster:
    port: int
    socket_dir: Path
    ca: pg_cluster.Authority

    def url(self, query: str) -> str:
        """The URL a master is given: a user, no password, the TLS parameters in ``query``."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{ROLE}" + (f"?{query}" if query else "")

    def superuser(self) -> psycopg.Connection[tuple[object, ...]]:
        """Over the local socket, which is trusted: what the test asks the server."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="ffrtmp", dbname=ROLE,
                               autocommit=True)


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[TlsCluster]:
    """TCP over hostssl only, with a SCRAM password, a role owning its database, as deployed."""
    if pg_cluster.bindir() is None:
        pytest.fail("PostgreSQL server binaries are required (Debian: postgresql)")
    with pg_cluster.running(free_port(), auth_host="scram-sha-256", tls=True) as cluster:
        assert cluster.ca is not None
        with psycopg.connect(host=str(cluster.data), port=cluster.port, user="ffrtmp", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD "
                         f"'{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
        made = TlsCluster(cluster.port, cluster.data, cluster.ca)
        # the premise: without TLS the server lets nobody in over TCP, even with the password
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry .* no encryption"):
            psycopg.connect(made.url("sslmode=disable"), password=PASSWORD).close()
        yield made


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    secret = tmp_path / "database-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o640)
    return master_env(tmp_path, FFRTMP_DATABASE=url, FFRTMP_DATABASE_PASSWORD_FILE=str(secret))


def _run_master(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A master that is expected to stop at start: its exit status and everything it said."""
    return subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, check=False)


def _logs(tmp_path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp_path / "log").rglob("*") if p.is_file())


def _sessions(cluster: TlsCluster) -> list[tuple[object, ...]]:
    """The role's sessions as the server sees them: application, encrypted, protocol."""
    with cluster.superuser() as conn:
        return conn.execute(
            "SELECT a.application_name, s.ssl, s.version FROM pg_stat_activity a "
            "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = %s", (ROLE,)).fetchall()


# verify-full as deployed; require encrypts without checking the server; no sslmode is libpq's
# "prefer", which encrypts too when the server offers TLS (and would not insist if it did not)
@pytest.mark.parametrize("query", ["sslmode=verify-full&sslrootcert={ca}", "sslmode=require", ""],
                         ids=["verify-full", "require", "no-sslmode"])
def test_a_master_over_tls_serves_and_the_server_sees_its_sessions_encrypted(
        tmp_path: Path, tls_cluster: TlsCluster, query: str) -> None:
    url = tls_cluster.url(query.format(ca=tls_cluster.ca.cert))
    master = start_master(tmp_path, _env(tmp_path, url))
    try:
        ops = master.session()
        job = submit(master, ops)
        assert ops.get(f"{master.url}/api/v1/jobs/{job}", timeout=10).json()["job"]["state"] == "queued"
        sessions = wait_until(lambda: _sessions(tls_cluster), 10, "the master's sessions on the server")
        assert {row[0] for row in sessions} == {"ffrtmp-master"}
        assert all(row[1] is True and row[2] in ("TLSv1.2", "TLSv1.3") for row in sessions), sessions
    finally:
        stop_process(master.proc)
    # the query is logged redacted: it may hold secrets (sslpassword), and the names are enough
    shown = f"postgresql://***@127.0.0.1:{tls_cluster.port}/{ROLE}" + ("?REDACTED" if query else "")
    assert f"database {shown} at schema version" in master.output()
    assert PASSWORD not in master.output() + _logs(tmp_path)
    with tls_cluster.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = %s", (job,)).fetchone() == (1,)


def _refused(tmp_path: Path, cluster: TlsCluster, query: str) -> str:
    """Start a master with ``query``: it must stop with status 1 and a line naming the database
    and libpq's reason, no traceback, no password; returns what it said."""
    run = _run_master(_env(tmp_path, cluster.url(query)))
    said = run.stdout + run.stderr
    assert run.returncode == 1, said
    assert f"cannot open the database postgresql://***@127.0.0.1:{cluster.port}/{ROLE}?REDACTED: " \
        in run.stdout, said
    assert "Traceback" not in said
    assert PASSWORD not in said + _logs(tmp_path)
    return said


def test_a_master_without_tls_is_refused_at_start(tmp_path: Path, tls_cluster: TlsCluster) -> None:
    said = _refused(tmp_path, tls_cluster, "sslmode=disable")
    refusal = f'no pg_hba.conf entry for host "127.0.0.1", user "{ROLE}", database "{ROLE}", no encryption'
    assert refusal in said


def test_a_master_trusting_another_ca_is_refused_at_start(tmp_path: Path, tls_cluster: TlsCluster) -> None:
    other = pg_cluster.make_ca(tmp_path / "other-ca", "another-ca")
    said = _refused(tmp_path, tls_cluster, f"sslmode=verify-full&sslrootcert={other.cert}")
    assert "SSL error: certificate verify failed" in said


def test_verify_full_without_a_ca_file_is_refused_at_start_naming_the_file(
        tmp_path: Path, tls_cluster: TlsCluster) -> None:
    missing = tmp_path / "no-such-ca.crt"
    said = _refused(tmp_path, tls_cluster, f"sslmode=verify-full&sslrootcert={missing}")
    assert f'root certificate file "{missing}" does not exist' in said


def test_verify_full_refuses_a_certificate_for_another_name(tmp_path: Path, tls_cluster: TlsCluster) -> None:
    """The CA is right but the certificate names localhost and loopback, not the host the
    master was told (``host``, reached at ``hostaddr``): verify-full checks the name too."""
    query = f"sslmode=verify-full&sslrootcert={tls_cluster.ca.cert}&host=db.example&hostaddr=127.0.0.1"
    said = _refused(tmp_path, tls_cluster, query)
    assert 'does not match host name "db.example"' in said
