"""Why the CLI cannot reach a master, said in one line, against real sockets; and where it
finds its settings on a managed host.

Each failure is produced for real: a closed port (refused), an ``.invalid`` host (DNS, which
never resolves), a listener that accepts and never answers (timeout), one whose full accept queue drops the
connection (connect timeout), a real gunicorn master
serving HTTPS asked over plain HTTP, a plain master asked over HTTPS, and a self-signed
certificate without the CA. The commands that are about the process run as ``python -m
ffrtmp``; the timeout runs in-process with a short timeout, which a subprocess cannot get.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ffrtmp.cli import connection
from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from tests.conftest import OPERATOR_TOKEN, MasterProcess, master_env, start_master, stop_process
from tests.helpers import free_port, wait_until
from tests.processes import clean_env


def ffrtmp(*argv: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), "FFRTMP_API_TOKEN": OPERATOR_TOKEN, **environ}
    return subprocess.run([sys.executable, "-m", "ffrtmp", *argv], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def tls_master(tmp_path_factory: pytest.TempPathFactory,
               certificate: tuple[Path, Path]) -> Iterator[tuple[str, str]]:
    """A real master serving HTTPS: (its https:// URL, the same port as http://)."""
    tmp = tmp_path_factory.mktemp("tls-master")
    env = master_env(tmp, FFRTMP_TLS_CERT_FILE=str(certificate[0]), FFRTMP_TLS_KEY_FILE=str(certificate[1]))
    process = start_master(tmp, env, wait_ready=False)
    url = "https://" + env["FFRTMP_MASTER_BIND"]

    def ready() -> bool:
        assert process.proc.poll() is None, process.output()
        return requests.get(url + "/ready", verify=str(certificate[0]), timeout=2).status_code == 200

    try:
        wait_until(ready, 30, "the HTTPS master's /ready")
        yield url, "http://" + env["FFRTMP_MASTER_BIND"]
    finally:
        stop_process(process.proc)


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MasterProcess]:
    process = start_master(tmp_path_factory.mktemp("master"))
    yield process
    stop_process(process.proc)


def one_line(proc: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert proc.returncode == status and proc.stdout == "", proc
    assert proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def test_a_closed_port_says_connection_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = one_line(ffrtmp("nodes", "list", FFRTMP_MASTER_URL=url, FFRTMP_CONFIG=str(tmp_path / "none")))
    assert err == (f"ffrtmp: cannot reach the master at {url}: connection refused: nothing listens "
                   "on that port (is the master running? is the port right?)\n")


def test_an_unknown_host_says_dns(tmp_path: Path) -> None:
    url = "http://no-such-master.invalid:8080"
    err = one_line(ffrtmp("nodes", "list", FFRTMP_MASTER_URL=url, FFRTMP_CONFIG=str(tmp_path / "none")))
    assert err == (f"ffrtmp: cannot reach the master at {url}: no such host: no-such-master.invalid "
                   "does not resolve (DNS); check the URL\n")


def test_a_master_that_never_answers_says_timed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        err = io.StringIO()
        status = cli.main(["jobs", "list"], env=Env(stdout=io.StringIO(), stderr=err, environ={
            "FFRTMP_MASTER_URL": url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
            "FFRTMP_CONFIG": str(tmp_path / "none")}))
    assert status == 1
    assert err.getvalue() == (f"ffrtmp: cannot reach the master at {url}: timed out: connected, but no "
                              "answer within 0.5 s (the master is stuck or overloaded)\n")


def test_a_master_that_never_accepts_says_timed_out_connecting(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A full accept queue: the kernel drops further SYNs, as a firewall that drops them does."""
    monkeypatch.setattr(connection, "TIMEOUT_S", 0.5)
    with socket.socket() as deaf, contextlib.ExitStack() as queued:
        deaf.bind(("127.0.0.1", 0))
        deaf.listen(0)  # never accepted: a queue of one, which these connections fill
        address = deaf.getsockname()
        for _ in range(64):  # until a connection itself cannot be made: then the queue is full
            try:
                queued.enter_context(socket.create_connection(address, timeout=0.3))
            except TimeoutError:
                break
        else:
            pytest.fail("the kernel kept accepting connections nobody accepted")
        url = f"http://127.0.0.1:{address[1]}"
        err = io.StringIO()
        status = cli.main(["jobs", "list"], env=Env(stdout=io.StringIO(), stderr=err, environ={
            "FFRTMP_MASTER_URL": url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
            "FFRTMP_CONFIG": str(tmp_path / "none")}))
    assert status == 1
    assert err.getvalue() == (f"ffrtmp: cannot reach the master at {url}: timed out connecting "
                              "after 0.5 s (a firewall, or the wrong host?)\n")


def test_plain_http_to_a_tls_port_says_use_https(tls_master: tuple[str, str], tmp_path: Path) -> None:
    _, plain = tls_master
    err = one_line(ffrtmp("nodes", "list", FFRTMP_MASTER_URL=plain, FFRTMP_CONFIG=str(tmp_path / "none")))
    assert err == (f"ffrtmp: cannot reach the master at {plain}: this port speaks TLS, use https:// "
                   "(FFRTMP_MASTER_URL or --master-url)\n")


def test_https_to_a_plain_port_says_use_http(master: MasterProcess, tmp_path: Path) -> None:
    https = master.url.replace("http://", "https://")
    err = one_line(ffrtmp("nodes", "list", FFRTMP_MASTER_URL=https, FFRTMP_CONFIG=str(tmp_path / "none")))
    assert err == (f"ffrtmp: TLS handshake with {https} failed: this port speaks plain HTTP, use "
                   "http:// (or turn TLS on at the master)\n")


def test_an_untrusted_certificate_names_the_ca_setting(tls_master: tuple[str, str], tmp_path: Path,
                                                       certificate: tuple[Path, Path]) -> None:
    url, _ = tls_master
    err = one_line(ffrtmp("nodes", "list", FFRTMP_MASTER_URL=url, FFRTMP_CONFIG=str(tmp_path / "none")))
    assert err.startswith(f"ffrtmp: TLS verification of {url} failed: the master's certificate is "
                          "not trusted (self-signed certificate; CERTIFICATE_VERIFY_FAILED)")
    assert err.endswith(": set FFRTMP_CA_FILE or --ca-file to the CA that signed it\n")
    trusted = ffrtmp("nodes", "list", "--json", FFRTMP_MASTER_URL=url, FFRTMP_CA_FILE=str(certificate[0]),
                     FFRTMP_CONFIG=str(tmp_path / "none"))
    assert trusted.returncode == 0, trusted


# --- the config files: /etc/ffrtmp/cli.env on a managed host, ~/.config over it ---


def test_the_host_file_makes_the_cli_just_work_and_the_user_file_overrides_it(
        tls_master: tuple[str, str], certificate: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = tls_master
    token_file = tmp_path / "api-token"
    token_file.write_text(OPERATOR_TOKEN + "\n")
    system = tmp_path / "etc" / "cli.env"  # what the roles write, as /etc/ffrtmp/cli.env
    system.parent.mkdir()
    system.write_text(f"# written by ansible\nFFRTMP_MASTER_URL={url}\nFFRTMP_CA_FILE={certificate[0]}\n"
                      f"FFRTMP_API_TOKEN_FILE={token_file}\n")
    monkeypatch.setattr(connection, "SYSTEM_CONFIG", system)
    home = tmp_path / "home"

    def run(*argv: str, **environ: str) -> tuple[int, str]:
        err = io.StringIO()
        status = cli.main(list(argv), env=Env(stdout=io.StringIO(), stderr=err,
                                              environ={"HOME": str(home), **environ}))
        return status, err.getvalue()

    assert run("nodes", "list") == (0, "")
    (home / ".config" / "ffrtmp").mkdir(parents=True)
    user = home / ".config" / "ffrtmp" / "cli.env"
    user.write_text("FFRTMP_API_TOKEN=not-the-operator-token\n")  # one key; the rest from /etc
    assert run("nodes", "list")[0] == 4
    user.write_text("")
    assert run("nodes", "list") == (0, "")
    alone = tmp_path / "alone.env"  # $FFRTMP_CONFIG: that file instead of both
    alone.write_text(f"FFRTMP_MASTER_URL={url}\nFFRTMP_API_TOKEN_FILE={token_file}\n")
    status, err = run("nodes", "list", FFRTMP_CONFIG=str(alone))
    assert status == 1 and "CERTIFICATE_VERIFY_FAILED" in err


def test_the_user_file_is_read_by_a_real_process(master: MasterProcess, tmp_path: Path) -> None:
    (tmp_path / ".config" / "ffrtmp").mkdir(parents=True)
    (tmp_path / ".config" / "ffrtmp" / "cli.env").write_text(f"FFRTMP_MASTER_URL={master.url}\n")
    assert ffrtmp("nodes", "list", HOME=str(tmp_path)).returncode == 0


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root reads any file")
def test_an_unreadable_host_file_is_named_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "cli.env"
    system.write_text("FFRTMP_MASTER_URL=http://127.0.0.1:1\n")
    system.chmod(0o000)
    monkeypatch.setattr(connection, "SYSTEM_CONFIG", system)
    err = io.StringIO()
    cli.main(["nodes", "list"], env=Env(stdout=io.StringIO(), stderr=err, environ={
        "HOME": str(tmp_path), "FFRTMP_MASTER_URL": f"http://127.0.0.1:{free_port()}",
        "FFRTMP_API_TOKEN": OPERATOR_TOKEN}))
    assert err.getvalue().startswith(f"ffrtmp: warning: cannot read {system} (permission denied")
