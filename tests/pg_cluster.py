"""A throwaway PostgreSQL cluster that can be stopped and started again at the same address.

The shared ``postgres_server`` fixture lives for the whole session, so nothing may stop it;
the high-availability test stops its own database for an outage, and the several-masters
benchmark needs one outside pytest. Both use this: ``initdb`` into a temporary directory,
``pg_ctl`` on a fixed loopback port with fsync off, as the fixture does.

``tls=True`` makes it a server as ``ffrtmp_postgres`` deploys one with a certificate: ``ssl = on``
with a server certificate for ``localhost``/127.0.0.1/::1 from a throwaway CA (``openssl``), and
TCP let in over ``hostssl`` only, so a connection without TLS is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def bindir() -> Path | None:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


@dataclasses.dataclass(frozen=True)
class Authority:
    """A throwaway certificate authority: its certificate (what clients trust) and its key."""

    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("a TLS cluster needs the openssl command (Debian: openssl)")
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


# P-256 keys: generated in milliseconds, where RSA takes a noticeable part of a second
_NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def make_ca(directory: Path, name: str = "ffrtmp-test-ca") -> Authority:
    """A new self-signed CA in ``directory`` (created), valid for two days."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = Authority(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl("req", "-x509", *_NEW_KEY, "-keyout", ca.key, "-out", ca.cert, "-days", "2",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def issue_server_cert(ca: Authority, cert: Path, key: Path,
                      names: tuple[str, ...] = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")) -> None:
    """A server certificate signed by ``ca`` for ``names`` (subjectAltName entries): what
    ``sslmode=verify-full`` checks the host a client dialled against."""
    request, extensions = cert.with_suffix(".csr"), cert.with_suffix(".ext")
    extensions.write_text(f"subjectAltName={','.join(names)}\nbasicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", *_NEW_KEY, "-keyout", key, "-out", request, "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-days", "2",
             "-set_serial", str(secrets.randbits(63)), "-extfile", extensions, "-out", cert)
    request.unlink()
    extensions.unlink()


@dataclasses.dataclass
class Cluster:
    """One cluster: its binaries, its directory, its port, and how to run its tools."""

    bindir: Path
    base: Path
    port: int
    as_postgres: list[str]  # initdb and the server refuse to run as root
    fsync: bool = False  # tests need no durability across a machine crash; a benchmark does
    ca: Authority | None = None  # with TLS: the authority that signed the server's certificate

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql://ffrtmp@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.data} -c max_connections=300"
        if not self.fsync:
            options += " -F"
        self.pg_ctl("-w", "-t", "60", "-l", str(self.data / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions and shuts down cleanly; ``immediate`` is a crash."""
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop")


def _enable_tls(cluster: Cluster, auth_host: str) -> Authority:
    """``ssl = on`` with a certificate from a new CA; pg_hba.conf: the socket trusted, TCP over
    ``hostssl`` only (no ``host`` line, as ffrtmp_postgres writes it with a certificate)."""
    ca = make_ca(cluster.base / "ca")
    cert, key = cluster.data / "server.crt", cluster.data / "server.key"
    issue_server_cert(ca, cert, key)
    for path in (cert, key):
        path.chmod(0o600)  # the server refuses a key others can read
        if cluster.as_postgres:
            shutil.chown(path, "postgres", "postgres")
    with (cluster.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                   "ssl_min_protocol_version = 'TLSv1.2'\n")
    (cluster.data / "pg_hba.conf").write_text(
        "local   all all              trust\n"
        f"hostssl all all 127.0.0.1/32 {auth_host}\n"
        f"hostssl all all ::1/128      {auth_host}\n", encoding="utf-8")
    return ca


def create(port: int, *, fsync: bool = False, auth_host: str = "trust", tls: bool = False) -> Cluster:
    """initdb a new cluster (superuser ``ffrtmp``, trusted over its socket; TCP logins by
    ``auth_host``, over TLS only if ``tls``) and start it on ``port``."""
    binaries = bindir()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries are required (Debian: postgresql); "
                           "tools/bootstrap.sh --test installs them")
    base = Path(tempfile.mkdtemp(prefix="ffrtmp-pg-"))
    base.chmod(0o755)
    (base / "data").mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base / "data", "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    cluster = Cluster(binaries, base, port, as_postgres, fsync)
    subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(cluster.data), "--auth-local=trust",
                    f"--auth-host={auth_host}", "-U", "ffrtmp", "--no-sync"], check=True,
                   capture_output=True, timeout=120)
    if tls:
        cluster.ca = _enable_tls(cluster, auth_host)
    cluster.start()
    return cluster


@contextlib.contextmanager
def running(port: int, *, fsync: bool = False, auth_host: str = "trust",
            tls: bool = False) -> Iterator[Cluster]:
    """A new cluster, crashed and removed on the way out."""
    cluster = create(port, fsync=fsync, auth_host=auth_host, tls=tls)
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop("immediate")
        shutil.rmtree(cluster.base, ignore_errors=True)
