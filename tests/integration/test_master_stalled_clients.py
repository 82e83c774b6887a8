"""Slow and broken clients against a real gunicorn master: they must not blind it.

Clients here speak raw sockets, because requests cannot send half a request line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import OPERATOR_TOKEN, MasterProcess, master_env, start_master, stop_process
from tests.helpers import wait_until
from tests.integration.test_cli import certificate  # noqa: F401 (the fixture)
from tests.integration.test_master_reload import worker_pids


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@contextlib.contextmanager
def stalled_clients(url: str, count: int, sent: bytes) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent ``sent`` and then go silent."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(_address(url), timeout=10)
            sock.sendall(sent)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _answers_within(url: str, limit: float) -> float:
    started = time.monotonic()
    reply = requests.get(url, headers={"Connection": "close"}, timeout=limit)
    elapsed = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    return elapsed


@pytest.mark.slow
def test_two_hundred_stalled_clients_do_not_blind_health_or_metrics(tmp_path: Path) -> None:
    m = start_master(tmp_path, master_env(tmp_path, FFRTMP_READ_TIMEOUT="60"))
    try:
        before = _open_sockets(m)  # by inode: one that closes meanwhile (a probe's) is no gap
        with stalled_clients(m.url, 200, b"GET /api/v1/jobs HT") as socks:
            wait_until(lambda: len(_open_sockets(m) - before) >= 200, 30,
                       "the workers to accept them all")
            timings = []
            for _ in range(5):
                timings.append(_answers_within(m.url + "/health", 1.0))
                timings.append(_answers_within(m.metrics_url + "/metrics", 1.0))
            assert max(timings) < 1.0, timings
            # parked, not spinning: the event loop waits for their next bytes
            cpu_before, wall_before = _cpu_seconds(m), time.monotonic()
            time.sleep(3)
            busy = (_cpu_seconds(m) - cpu_before) / (time.monotonic() - wall_before)
            assert busy < 0.5, f"workers used {busy:.0%} of a CPU holding idle connections"
            # every stalled connection is still open: the bound, not luck, is what helps
            for sock in socks[:20]:
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
    finally:
        stop_process(m.proc)


def _open_sockets(m: MasterProcess) -> set[str]:
    """Sockets the gunicorn workers hold (``socket:[inode]``): each accepted connection is one."""
    found: set[str] = set()
    for pid in worker_pids(m):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:"):
                    found.add(link)
    return found


def _cpu_seconds(m: MasterProcess) -> float:
    ticks = 0
    for pid in worker_pids(m):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server ends the connection, and what it said before."""
    started, received = time.monotonic(), b""
    sock.settimeout(limit)
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


@pytest.mark.slow
@pytest.mark.parametrize("sent", [
    b"GET /api/v1/jobs HT",
    b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Authorization: Bearer " + OPERATOR_TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"input\":",
], ids=["partial-request-line", "partial-body"])
def test_a_stalled_connection_is_closed_after_the_read_timeout(tmp_path: Path, sent: bytes) -> None:
    m = start_master(tmp_path, master_env(tmp_path, FFRTMP_READ_TIMEOUT="2"))
    try:
        with stalled_clients(m.url, 1, sent) as [sock]:
            seconds, received = _closed_after(sock, 30)
        assert 1.5 < seconds < 10, seconds
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"application/json" in head, received  # an answer in the envelope, then the close
        if b"HTTP/1.1" not in sent:  # headers that never arrived
            assert head.startswith(b"HTTP/1.1 408 "), received
            assert json.loads(body)["error"]["code"] == "request_timeout"
        assert requests.get(m.url + "/health", timeout=10).status_code == 200
    finally:
        stop_process(m.proc)


def raw_exchange(m: MasterProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(_address(m.url), timeout=10) as sock:
        sock.sendall(request)
        _, received = _closed_after(sock, 10)
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /health HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
    (b"BAD\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
], ids=["uri-too-long", "bad-request-line", "garbage", "bad-header-name", "too-many-headers"])
def test_gunicorn_own_errors_are_the_json_envelope(master_proc: MasterProcess, request_bytes: bytes,
                                                   status: int) -> None:
    code, headers, body = raw_exchange(master_proc, request_bytes)
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] and error["message"] and "<" not in error["message"]
    wait_until(lambda: requests.get(master_proc.url + "/health", timeout=5).ok, 10, "the master to serve")


@pytest.mark.slow
def test_metrics_port_answers_while_every_api_thread_is_busy(tmp_path: Path) -> None:
    """Bodies that stall after complete headers do hold API threads; not the metrics port's."""
    env = master_env(tmp_path, FFRTMP_WORKERS="1", FFRTMP_THREADS="4", FFRTMP_READ_TIMEOUT="60")
    m = start_master(tmp_path, env)
    stalled_body = (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + OPERATOR_TOKEN.encode() +
                    b"\r\nContent-Length: 100\r\n\r\n{\"input\":")
    try:
        with stalled_clients(m.url, 8, stalled_body):
            with pytest.raises(requests.Timeout):  # the API is saturated: the test is real
                requests.get(m.url + "/health", timeout=2)
            timings = [_answers_within(m.metrics_url + path, 1.0)
                       for path in ("/metrics", "/health") * 3]
            assert max(timings) < 1.0, timings
    finally:
        stop_process(m.proc)


@pytest.mark.slow
def test_a_stalled_tls_handshake_is_closed_after_the_read_timeout(tmp_path: Path,
                                                                  certificate: tuple[Path, Path],  # noqa: F811
                                                                  ) -> None:
    cert, key = certificate
    env = master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert), FFRTMP_TLS_KEY_FILE=str(key),
                     FFRTMP_READ_TIMEOUT="2")
    m = start_master(tmp_path, env, wait_ready=False)
    https = "https://" + env["FFRTMP_MASTER_BIND"]
    try:
        wait_until(lambda: requests.get(https + "/health", verify=str(cert), timeout=2).ok, 30,
                   "the HTTPS master")
        # the start of a TLS ClientHello record, then silence
        with stalled_clients(m.url, 1, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") as [sock]:
            seconds, _ = _closed_after(sock, 30)
        assert 1.5 < seconds < 10, seconds
        assert requests.get(https + "/health", verify=str(cert), timeout=10).ok
    finally:
        stop_process(m.proc)
