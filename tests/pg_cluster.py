"""A throwaway PostgreSQL cluster that can be stopped and started again at the same address.

The shared ``postgres_server`` fixture lives for the whole session, so nothing may stop it;
the high-availability test stops its own database for an outage, and the several-masters
benchmark needs one outside pytest. Both use this: ``initdb`` into a temporary directory,
``pg_ctl`` on a fixed loopback port with fsync off, as the fixture does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
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


@dataclasses.dataclass
class Cluster:
    """One cluster: its binaries, its directory, its port, and how to run its tools."""

    bindir: Path
    base: Path
    port: int
    as_postgres: list[str]  # initdb and the server refuse to run as root
    fsync: bool = False  # tests need no durability across a machine crash; a benchmark does

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


def create(port: int, *, fsync: bool = False, auth_host: str = "trust") -> Cluster:
    """initdb a new cluster (superuser ``ffrtmp``, trusted over its socket; TCP logins by
    ``auth_host``) and start it on ``port``."""
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
    cluster.start()
    return cluster


@contextlib.contextmanager
def running(port: int, *, fsync: bool = False, auth_host: str = "trust") -> Iterator[Cluster]:
    """A new cluster, crashed and removed on the way out."""
    cluster = create(port, fsync=fsync, auth_host=auth_host)
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop("immediate")
        shutil.rmtree(cluster.base, ignore_errors=True)
