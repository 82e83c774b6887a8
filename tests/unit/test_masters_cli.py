"""``ffrtmp masters``' table, and ``ffrtmp db migrate-to``'s refusals before it touches a database."""

from __future__ import annotations

import io
from pathlib import Path

from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from ffrtmp.cli.masters import master_rows


def test_the_table_shows_each_master_and_the_duties_it_ran_last() -> None:
    data = {"masters": [
        {"id": "m1:8080", "up": True, "version": "0.1.0", "started_at": "2026-01-01T00:00:00.000Z",
         "last_seen": "2026-01-01T01:00:00.000Z", "holds": ["leases", "offline"]},
        {"id": "m2:8080", "up": False, "version": "0.1.0", "started_at": "2026-01-01T00:00:00.000Z",
         "last_seen": "2026-01-01T00:30:00.000Z", "holds": []}], "duties": {}}
    header, one, two = master_rows(data).splitlines()
    assert header.split() == ["ID", "UP", "VERSION", "STARTED", "LAST", "SEEN", "DUTIES"]
    assert one.split()[:2] == ["m1:8080", "yes"] and one.endswith("leases, offline")
    assert two.split()[:2] == ["m2:8080", "no"] and two.endswith("-")
    assert "no master has announced itself" in master_rows({"masters": [], "duties": {}})


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str]:
    err = io.StringIO()
    status = cli.main(argv, env=Env(stdout=io.StringIO(), stderr=err, environ=environ or {}))
    return status, err.getvalue()


def test_migrate_to_refuses_what_it_cannot_copy_naming_it(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'master.db'}"
    status, err = run(["db", "migrate-to", "mysql://db/ffrtmp", "--from", source])
    assert status == 2 and "postgresql://" in err
    status, err = run(["db", "migrate-to", "postgresql://u:secret@db/ffrtmp", "--from", source])
    assert status == 2 and "--password-file" in err and "secret" not in err
    status, err = run(["db", "migrate-to", "postgresql://u@db/ffrtmp"],
                      {"FFRTMP_DATABASE": "postgresql://u@other/ffrtmp"})
    assert status == 2 and "the source must be the SQLite database" in err
    status, err = run(["db", "migrate-to", "postgresql://u@db/ffrtmp", "--from", source])
    assert status == 1 and f"no SQLite database at {tmp_path / 'master.db'}" in err
    missing = tmp_path / "no-such-file"
    status, err = run(["db", "migrate-to", "postgresql://u@db/ffrtmp", "--from", source,
                       "--password-file", str(missing)])
    assert status == 78 and err.startswith("ffrtmp: --password-file: cannot read the password file")
