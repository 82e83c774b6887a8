"""Several master URLs: the client moves to the next master on exactly the failures it retries.

Real gunicorn masters (two of them on one SQLite file share one queue, as masters on one
PostgreSQL do), closed ports, and loopback HTTP servers that answer what a test scripts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable, RetryPolicy
from ffrtmp.shutdown import Shutdown
from tests.conftest import (
    ENROLL_TOKEN,
    OPERATOR_TOKEN,
    MasterProcess,
    master_env,
    start_master,
    stop_process,
)
from tests.helpers import free_port, wait_until
from tests.integration.test_cli import run_cli

NODE = {"name": "failover", "slots": 2, "encoders": ["libx264", "aac"], "hwaccels": []}
NOOP = {"input": "testsrc://?duration=1&size=160x120&rate=10",
        "outputs": [{"url": "rtmp://127.0.0.1/live/t", "preset": "h264-480p"}]}


class Fake:
    """A loopback master that answers ``status`` to every request and records when each came."""

    def __init__(self, status: int) -> None:
        self.status = status  # 0: read the request, then close the connection without a word
        self.seen: list[float] = []
        self.nodes: list[Any] | None = None  # set: GET /api/v1/nodes answers 200 with these
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if fake.nodes is not None and self.path == "/api/v1/nodes":
                    fake.seen.append(time.monotonic())
                    body = json.dumps({"nodes": fake.nodes}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.do_POST()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.seen.append(time.monotonic())
                if fake.status == 0:
                    self.close_connection = True
                    return
                body = json.dumps({"assignments": [], "cancel": [], "drain": False} if fake.status == 200
                                  else {"error": {"code": f"e{fake.status}", "message": "no",
                                                  "details": None}}).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fakes() -> Iterator[list[Fake]]:
    made: list[Fake] = []
    yield made
    for fake in made:
        fake.close()


def fake(fakes: list[Fake], status: int) -> Fake:
    made = Fake(status)
    fakes.append(made)
    return made


Switches = list[tuple[str, str, str]]


def client(urls: list[str], switches: Switches | None = None, **retry: Any) -> MasterClient:
    c = MasterClient(urls, shutdown=Shutdown(), retry=RetryPolicy(**retry), timeout_s=5,
                     on_switch=lambda *switch: (switches if switches is not None else []).append(switch))
    c.node_id, c.credential = "n-1", "secret-credential"
    return c


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[list[MasterProcess]]:
    """Two real masters over one queue (one SQLite file), each with its own ports and logs."""
    masters: list[MasterProcess] = []
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    try:
        for name in ("m1", "m2"):
            directory = tmp_path / name
            directory.mkdir()
            masters.append(start_master(directory, master_env(directory, FFRTMP_DATABASE=database),
                                        name=name))
        yield masters
    finally:
        for master in masters:
            stop_process(master.proc)


# --- which failures move to the next master, and how fast ---


def test_a_closed_port_first_moves_to_the_real_master_at_once(master_proc: MasterProcess,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    switches: Switches = []
    c = client([closed, master_proc.url + "/"], switches, backoff_factor=30)  # a backoff would show
    c.credential = None
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="ffrtmp.agent.client"):
        data = c.register(ENROLL_TOKEN, NODE)
        c.heartbeat([], 2)
        c.heartbeat([], 2)
    assert time.monotonic() - started < 20, "no backoff before the first try of the second master"
    assert data["node_id"] == c.node_id and c.urls == [closed, master_proc.url]
    assert c.url == master_proc.url
    assert [(old, new) for old, new, _ in switches] == [(closed, master_proc.url)]
    assert "ConnectionError" in switches[0][2] and "/api/v1/nodes/register" in switches[0][2]
    lines = [r.getMessage() for r in caplog.records if "switched masters" in r.getMessage()]
    assert len(lines) == 1 and f"{closed} -> {master_proc.url}" in lines[0], lines


@pytest.mark.parametrize("status", [502, 503, 504])
def test_an_unavailable_answer_moves_on_and_the_next_message_stays(fakes: list[Fake], status: int) -> None:
    away, good = fake(fakes, status), fake(fakes, 200)
    c = client([away.url, good.url], backoff_factor=30)
    assert c.claim(1, 0) == [] and c.heartbeat([], 1)["drain"] is False
    assert (len(away.seen), len(good.seen)) == (1, 2)
    assert c.url == good.url


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 500])
def test_a_refusal_never_moves_to_another_master(fakes: list[Fake], status: int) -> None:
    refusing, good = fake(fakes, status), fake(fakes, 200)
    switches: Switches = []
    c = client([refusing.url, good.url], switches)
    with pytest.raises(MasterRejected) as caught:
        c.result("j-1", {"attempt_token": "t", "outcome": "succeeded"})
    assert caught.value.status == status
    assert (len(refusing.seen), len(good.seen)) == (1, 0)
    assert c.url == refusing.url and switches == []


def test_a_full_cycle_backs_off_and_the_budget_is_total_plus_one_cycles(fakes: list[Fake]) -> None:
    a, b = fake(fakes, 503), fake(fakes, 503)
    c = client([a.url, b.url], total=2, backoff_factor=1.0)
    with pytest.raises(MasterUnavailable, match="HTTP 503"):
        c.heartbeat([], 1)
    assert (len(a.seen), len(b.seen)) == (3, 3)  # (total + 1) cycles of both masters
    order = sorted([(t, "a") for t in a.seen] + [(t, "b") for t in b.seen])
    assert [name for _, name in order] == ["a", "b"] * 3
    times = [t for t, _ in order]
    in_cycle = [times[1] - times[0], times[3] - times[2], times[5] - times[4]]
    assert all(gap < 1.0 for gap in in_cycle), in_cycle  # the second master at once
    assert times[2] - times[1] >= 1.0 and times[4] - times[3] >= 2.0  # then 1 s, 2 s backoffs


def test_shutdown_ends_the_backoff_but_not_the_immediate_failover(fakes: list[Fake]) -> None:
    a, b = fake(fakes, 503), fake(fakes, 503)
    shutdown = Shutdown()
    shutdown.request("SIGTERM")
    c = MasterClient([a.url, b.url], shutdown=shutdown, retry=RetryPolicy(backoff_factor=30), timeout_s=5)
    c.node_id, c.credential = "n-1", "secret-credential"
    with pytest.raises(MasterUnavailable, match="stopped by shutdown"):
        c.heartbeat([], 1)
    assert (len(a.seen), len(b.seen)) == (1, 1)


def test_one_url_is_a_list_of_one(fakes: list[Fake]) -> None:
    only = fake(fakes, 503)
    c = client([only.url], backoff_factor=0.01)
    with pytest.raises(MasterUnavailable):
        c.heartbeat([], 1)
    assert len(only.seen) == 4 and c.urls == [only.url] and c.url == only.url
    assert MasterClient(only.url + "/", shutdown=Shutdown()).urls == [only.url]


# --- a real master killed under the client ---


def long_polling(master: MasterProcess) -> bool:
    text = requests.get(master.metrics_url + "/metrics", timeout=5).text
    return "ffrtmp_claims_waiting 1.0" in text


def kill_9(master: MasterProcess) -> None:
    """SIGKILL to the master's whole group (arbiter and workers); back once none is left."""
    workers = psutil.Process(master.proc.pid).children(recursive=True)
    assert workers, "a gunicorn master has worker processes"
    os.killpg(master.proc.pid, signal.SIGKILL)
    master.proc.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive


def test_a_long_poll_cut_off_by_kill_9_is_asked_again_of_the_other_master(
        shared: list[MasterProcess]) -> None:
    m1, m2 = shared
    switches: Switches = []
    c = client([m1.url, m2.url], switches)
    c.credential = None
    c.register(ENROLL_TOKEN, NODE)
    claimed: list[Any] = []
    poll = threading.Thread(target=lambda: claimed.append(c.claim(1, 15)), daemon=True)
    poll.start()
    wait_until(lambda: long_polling(m1), 10, "the claim long-polling on m1")
    kill_9(m1)
    job_id = m2.session().post(m2.url + "/api/v1/jobs", json=NOOP, timeout=10).json()["job"]["id"]
    poll.join(14)  # the job ends the claim on m2 long before its 15 s wait
    assert not poll.is_alive(), "the claim did not come back"
    [[assignment]] = claimed
    assert assignment["job_id"] == job_id and c.url == m2.url
    assert [(old, new) for old, new, _ in switches] == [(m1.url, m2.url)]
    c.start(job_id, assignment["attempt_token"])
    c.result(job_id, {"attempt_token": assignment["attempt_token"], "outcome": "succeeded"})
    job = m2.session().get(f"{m2.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]
    assert job["state"] == "succeeded" and len(job["attempts"]) == 1


# --- the operator's CLI ---


def cli(tmp_path: Path, *urls: str) -> dict[str, str]:
    return {"FFRTMP_MASTER_URL": ",".join(urls), "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
            "FFRTMP_CONFIG": str(tmp_path / "none")}


def jobs(master: MasterProcess) -> list[dict[str, Any]]:
    reply = master.session().get(master.url + "/api/v1/jobs", timeout=10)
    listed: list[dict[str, Any]] = reply.json()["jobs"]
    return listed


def test_the_cli_moves_past_a_closed_port_and_a_503_to_the_master_that_answers(
        master_proc: MasterProcess, fakes: list[Fake], tmp_path: Path) -> None:
    closed, busy = f"http://127.0.0.1:{free_port()}", fake(fakes, 503)
    environ = cli(tmp_path, closed, busy.url, master_proc.url)
    listed = run_cli(["nodes", "list", "--json"], environ)
    assert listed.status == 0 and listed.err == "", listed
    submitted = run_cli(["jobs", "submit", "--input", "testsrc://?duration=1", "--output",
                         "rtmp://127.0.0.1/live/x", "--preset", "h264-480p"], environ)
    assert submitted.status == 0, submitted
    assert [job["id"] for job in jobs(master_proc)] == [submitted.out.strip()]  # once
    assert len(busy.seen) == 2  # each command asked it once: a 503 is done nothing


def test_the_cli_names_every_master_when_none_answers(fakes: list[Fake], tmp_path: Path) -> None:
    closed, busy = f"http://127.0.0.1:{free_port()}", fake(fakes, 503)
    run = run_cli(["jobs", "list"], cli(tmp_path, closed, busy.url))
    assert run.status == 1 and run.out == ""
    assert run.err.startswith("ffrtmp: no (HTTP 503); tried "), run.err
    assert f"{closed} (connection refused: nothing listens on that port), {busy.url} (HTTP 503)" in run.err
    assert run.err.count("\n") == 1
    both_closed = run_cli(["jobs", "list"], cli(tmp_path, closed, f"http://127.0.0.1:{free_port()}"))
    assert both_closed.status == 1
    assert both_closed.err.startswith(f"ffrtmp: cannot reach any master; tried {closed} (connection refused")


def test_the_cli_takes_a_refusal_from_the_first_master_as_the_answer(
        master_proc: MasterProcess, fakes: list[Fake], tmp_path: Path) -> None:
    refusing = fake(fakes, 404)
    run = run_cli(["jobs", "show", "j-1"], cli(tmp_path, refusing.url, master_proc.url))
    assert (run.status, run.err) == (1, "ffrtmp: no (HTTP 404)\n")


def test_a_submit_that_may_have_arrived_is_never_sent_to_another_master(
        master_proc: MasterProcess, fakes: list[Fake], tmp_path: Path) -> None:
    dropping = fake(fakes, 0)  # took the request, then the connection died: it may have acted
    dropping.nodes = []  # it answers submit's read of the nodes, so the POST goes to it too
    run = run_cli(["jobs", "submit", "--input", "testsrc://?duration=1", "--output",
                   "rtmp://127.0.0.1/live/x", "--preset", "h264-480p"],
                  cli(tmp_path, dropping.url, master_proc.url))
    assert run.status == 1 and len(dropping.seen) == 2 and jobs(master_proc) == []
    assert "not sent to another master: the request may have been carried out" in run.err, run.err
    listed = run_cli(["jobs", "list", "--json"], cli(tmp_path, dropping.url, master_proc.url))
    assert listed.status == 0, listed  # a GET is safe to ask again
