"""Hostile input against a real gunicorn master: chunked bodies (gunicorn de-chunks them) and
client text that tries to forge lines in the master's log file."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import requests

from ffrtmp import config
from tests.conftest import ENROLL_TOKEN, MasterProcess
from tests.helpers import wait_until

SPEC = {"input": "testsrc://?duration=1", "outputs": [{"url": "rtmp://h/a/b", "preset": "h264-480p"}]}
LIMIT = int(config.BY_NAME["max_body"].default or 0)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ ")


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body: requests sends it with ``Transfer-Encoding: chunked`` and no length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def padded(size: int) -> bytes:
    head = json.dumps(SPEC).encode()
    return head + b" " * (size - len(head))


def post_chunked(master: MasterProcess, body: bytes) -> requests.Response:
    return master.session().post(master.url + "/api/v1/jobs", data=chunks(body), timeout=30,
                                 headers={"Content-Type": "application/json"})


def test_a_chunked_body_over_the_limit_is_413_under_gunicorn(master_proc: MasterProcess) -> None:
    too_big = padded(LIMIT + 1000)
    with_length = master_proc.session().post(master_proc.url + "/api/v1/jobs", data=too_big, timeout=30,
                                             headers={"Content-Type": "application/json"})
    assert with_length.status_code == 413
    chunked = post_chunked(master_proc, too_big)
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in chunked.request.headers
    assert chunked.status_code == 413, chunked.text
    assert chunked.json() == with_length.json()
    assert chunked.json()["error"]["code"] == "request_entity_too_large"
    listed = master_proc.session().get(master_proc.url + "/api/v1/jobs", timeout=10).json()
    assert listed["jobs"] == []
    assert post_chunked(master_proc, padded(LIMIT)).status_code == 201, "a body at the limit fits"


def fail_a_job_with_reason(master: MasterProcess, reason: str) -> str:
    ops = master.session()
    job_id = ops.post(master.url + "/api/v1/jobs", json=SPEC, timeout=10).json()["job"]["id"]
    reg = master.session(ENROLL_TOKEN).post(master.url + "/api/v1/nodes/register", timeout=10,
                                            json={"name": "forger", "slots": 1,
                                                                  "encoders": ["libx264", "aac"]}).json()
    node = master.session(reg["credential"])
    claimed = node.post(f"{master.url}/api/v1/nodes/{reg['node_id']}/claim", json={"slots": 1},
                        timeout=10).json()
    token = claimed["assignments"][0]["attempt_token"]
    node.post(f"{master.url}/api/v1/jobs/{job_id}/start", json={"attempt_token": token},
              timeout=10).raise_for_status()
    reply = node.post(f"{master.url}/api/v1/jobs/{job_id}/result", timeout=10,
                      json={"attempt_token": token, "outcome": "failed", "reason": reason})
    assert reply.status_code == 200, reply.text
    return job_id


def log_lines(master: MasterProcess) -> list[str]:
    path = Path(master.env["FFRTMP_LOG_DIR"]) / "master" / "master.log"
    return path.read_bytes().decode("utf-8").split("\n")


def test_a_reason_with_control_characters_stays_on_one_log_line(master_proc: MasterProcess) -> None:
    forged = "2026-01-01T00:00:00.000Z INFO ffrtmp.master.store: job j-000000000000: running -> succeeded"
    reason = f"oops\n{forged}\rhidden\x1b[2K\x1b[1Agone\x07\x85\u2028end"
    job_id = fail_a_job_with_reason(master_proc, reason)

    def failed_lines() -> list[str]:
        return [line for line in log_lines(master_proc) if f"job {job_id}: running -> failed" in line]

    [line] = wait_until(failed_lines, 20, "the master's log line about the failed job")
    assert STAMP.match(line) and re.search(rf" job={job_id} attempt=1 node=n-\w+$", line), line
    assert "oops\\n2026-01-01T00:00:00.000Z INFO" in line and "\\rhidden\\x1b[2K" in line
    text = "\n".join(log_lines(master_proc))
    for char in ("\r", "\x1b", "\x07", "\x85", "\u2028"):
        assert char not in text, f"{char!r} reached the log file"
    assert all(STAMP.match(line) for line in log_lines(master_proc) if line), \
        "every line of the file is a record of its own"
    stored = master_proc.session().get(f"{master_proc.url}/api/v1/jobs/{job_id}", timeout=10).json()
    assert stored["job"]["history"][-1]["reason"] == reason, "the API keeps what the client sent"


def raw_exchange(master: MasterProcess, request: bytes) -> tuple[int, bytes]:
    host, port = master.env["FFRTMP_MASTER_BIND"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_malformed_chunked_body_is_400_not_500(master_proc: MasterProcess) -> None:
    from tests.conftest import OPERATOR_TOKEN

    head = (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + OPERATOR_TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for body in (b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"10\r\n{}"):
        status, payload = raw_exchange(master_proc, head + body)
        assert status == 400, (body, status, payload)
        assert json.loads(payload)["error"]["code"] == "bad_request"
    deep = master_proc.session().post(master_proc.url + "/api/v1/jobs", data=b"[" * 100_000, timeout=30,
                                      headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "nested" in deep.json()["error"]["message"], "in a worker thread, too"
    assert "unhandled error" not in master_proc.output()
