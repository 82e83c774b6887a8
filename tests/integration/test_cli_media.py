"""``ffrtmp media put|get|ls`` against a real nginx WebDAV store.

The round trip runs the real CLI process (``python -m ffrtmp``); the error cases run
``cli.main`` in-process with an explicit environment, as tests/integration/test_cli.py does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from tests.helpers import wait_until
from tests.processes import clean_env
from tests.webdav import WebDavStore


def environ(store: WebDavStore | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**clean_env(), "FFRTMP_CONFIG": str(tmp_path / "no-cli.env")}
    if store is not None:
        env |= {"FFRTMP_MEDIA_STORE_URL": store.url, "FFRTMP_MEDIA_CREDENTIALS_FILE": str(store.netrc)}
    return env | extra


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffrtmp", "media", *argv], check=False, env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def run_in(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["media", *argv], env=Env(stdout=out, stderr=err, environ=env))
    return status, out.getvalue(), err.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_put_ls_get_round_trips_a_file(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = tmp_path / "source.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    env = environ(webdav_store, tmp_path)
    put = run(["put", "--progress", str(local), "/in/"], env)
    assert put.returncode == 0, put.stderr
    assert put.stdout == "store:///in/source.bin\n"
    assert "100.0%" in put.stderr and "MB/s" in put.stderr
    listed = run(["ls", "/in"], env)
    assert listed.returncode == 0, listed.stderr
    name, size, *mtime = listed.stdout.split()
    assert (name, size) == ("source.bin", str(local.stat().st_size)) and mtime
    (tmp_path / "back").mkdir()
    got = run(["get", "--progress", "store:///in/source.bin"], env, cwd=tmp_path / "back")
    assert got.returncode == 0, got.stderr
    assert "100.0%" in got.stderr
    assert sha256(tmp_path / "back" / "source.bin") == sha256(local)


def test_put_defaults_to_the_root_and_quiet_shows_nothing(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = tmp_path / "a.mp4"
    local.write_bytes(b"abc")
    status, out, err = run_in(["put", "--quiet", str(local)], environ(webdav_store, tmp_path))
    assert (status, out, err) == (0, "store:///a.mp4\n", "")
    status, out, _ = run_in(["put", "--quiet", str(local), "out/b.mp4"], environ(webdav_store, tmp_path))
    assert (status, out) == (0, "store:///out/b.mp4\n")
    assert webdav_store.path("/out/b.mp4").read_bytes() == b"abc"


def test_get_into_a_directory_and_ls_as_json(webdav_store: WebDavStore, tmp_path: Path) -> None:
    webdav_store.path("/out/sub").mkdir(parents=True)
    webdav_store.path("/out/x.mp4").write_bytes(b"12345")
    env = environ(webdav_store, tmp_path)
    status, out, _ = run_in(["get", "/out/x.mp4", str(tmp_path)], env)
    assert (status, out) == (0, f"{tmp_path / 'x.mp4'}\n")
    assert (tmp_path / "x.mp4").read_bytes() == b"12345"
    status, out, _ = run_in(["ls", "--json", "/out/"], env)
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["sub"]["is_dir"] and entries["x.mp4"]["size"] == 5
    status, out, _ = run_in(["ls", "/out"], env)
    assert [line.split()[0] for line in out.splitlines()] == ["sub/", "x.mp4"]


def test_no_store_configured_names_the_setting(tmp_path: Path) -> None:
    local = tmp_path / "a.mp4"
    local.write_bytes(b"abc")
    status, out, err = run_in(["put", str(local)], environ(None, tmp_path))
    assert status == 78 and out == ""
    assert err.startswith("ffrtmp: no media store is configured: set FFRTMP_MEDIA_STORE_URL")
    assert len(err.splitlines()) == 1


def test_a_missing_local_file_or_bad_path_exits_non_zero(webdav_store: WebDavStore, tmp_path: Path) -> None:
    env = environ(webdav_store, tmp_path)
    missing = tmp_path / "none.mp4"
    assert run_in(["put", str(missing)], env) == (1, "", f"ffrtmp: {missing}: no such file\n")
    status, _, err = run_in(["ls", "/in/../etc"], env)
    assert status == 2 and "'..'" in err


def test_refusals_exit_at_once_with_the_status(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = tmp_path / "a.mp4"
    local.write_bytes(b"abc")
    status, _, err = run_in(["put", str(local), "/forbidden/a.mp4"], environ(webdav_store, tmp_path))
    assert status == 4 and err.startswith(f"ffrtmp: PUT {webdav_store.url}/forbidden/.a.mp4.") \
        and err.endswith(".part -> 403 Forbidden\n")
    no_login = environ(webdav_store, tmp_path) | {"FFRTMP_MEDIA_CREDENTIALS_FILE": ""}
    status, _, err = run_in(["ls"], no_login)
    assert (status, err) == (4, f"ffrtmp: GET {webdav_store.url}/ -> 401 Unauthorized\n")
    status, _, err = run_in(["get", "/none.mp4", str(tmp_path)], environ(webdav_store, tmp_path))
    assert (status, err) == (1, f"ffrtmp: GET {webdav_store.url}/none.mp4 -> 404 Not Found\n")
    assert not list(tmp_path.glob("none.mp4*"))


def test_a_bad_credentials_file_exits_78_naming_it(webdav_store: WebDavStore, tmp_path: Path) -> None:
    env = environ(webdav_store, tmp_path, FFRTMP_MEDIA_CREDENTIALS_FILE=str(tmp_path / "none.netrc"))
    status, _, err = run_in(["ls"], env)
    assert status == 78 and f"{tmp_path}/none.netrc cannot be read" in err


def test_a_store_that_stays_down_fails_after_the_tries(webdav_store: WebDavStore, tmp_path: Path) -> None:
    webdav_store.stop()
    status, _, err = run_in(["ls", "--tries", "2"], environ(webdav_store, tmp_path))
    assert status == 1
    assert err.splitlines() == [
        err.splitlines()[0], f"ffrtmp: GET {webdav_store.url}/: connection refused (gave up after 2 tries)"]
    assert "trying again in" in err.splitlines()[0]


def test_a_store_that_comes_back_gets_the_upload(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = tmp_path / "late.mp4"
    local.write_bytes(os.urandom(100_000))
    webdav_store.stop()
    log = tmp_path / "put.err"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ffrtmp", "media", "put", str(local), "/in/"],
                                env=environ(webdav_store, tmp_path), stdout=subprocess.PIPE, stderr=err,
                                text=True)
        wait_until(lambda: "trying again" in log.read_text(), 30, "the put to notice the store is down")
        webdav_store.start()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, log.read_text()
    assert out == "store:///in/late.mp4\n" and sha256(webdav_store.path("/in/late.mp4")) == sha256(local)
