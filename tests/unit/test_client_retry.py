"""Transport-only retries: messages are retried on transport failures and 502/503/504, nothing else.

A real HTTP server on loopback plays the master; the retry policy's backoff is shortened
(the policy object is the same one the agent uses, with smaller numbers).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable, RetryPolicy
from ffrtmp.shutdown import Shutdown


class Script:
    """What the fake master answers, one status per request, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seen: list[float] = []


@pytest.fixture
def master() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            script.seen.append(time.monotonic())
            status = script.statuses.pop(0) if script.statuses else 200
            body = (json.dumps({"assignments": [], "cancel": [], "drain": False}) if status == 200
                    else json.dumps({"error": {"code": f"e{status}", "message": "no", "details": None}}))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


def client(url: str, shutdown: Shutdown | None = None, backoff_factor: float = 0.05) -> MasterClient:
    c = MasterClient(url, shutdown=shutdown or Shutdown(),
                     retry=RetryPolicy(backoff_factor=backoff_factor), timeout_s=2)
    c.node_id, c.credential = "n-1", "secret-credential"
    return c


def test_the_policy_is_the_seeds() -> None:
    policy = RetryPolicy()
    assert (policy.total, policy.status_forcelist) == (3, frozenset({502, 503, 504}))
    assert [policy.backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_answers_are_retried(master: tuple[str, Script], status: int) -> None:
    url, script = master
    script.statuses = [status, status]
    assert client(url, backoff_factor=0.2).claim(1, 0) == []
    assert len(script.seen) == 3
    gaps = [b - a for a, b in zip(script.seen, script.seen[1:], strict=False)]
    # the backoff doubles: each wait lasts at least its delay (a busy machine only adds to it,
    # so lower bounds hold under any load; the exact delays are test_the_policy_is_the_seeds')
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps


def test_retries_stop_after_three(master: tuple[str, Script]) -> None:
    url, script = master
    script.statuses = [503] * 10
    with pytest.raises(MasterUnavailable):
        client(url).heartbeat([], 1)
    assert len(script.seen) == 4  # the first try and three retries


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 500])
def test_refusals_are_never_retried(master: tuple[str, Script], status: int) -> None:
    url, script = master
    script.statuses = [status]
    with pytest.raises(MasterRejected) as caught:
        client(url).result("j-1", {"attempt_token": "t", "outcome": "succeeded"})
    assert caught.value.status == status and caught.value.code == f"e{status}"
    assert len(script.seen) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    from tests.helpers import free_port

    started = time.monotonic()
    with pytest.raises(MasterUnavailable):
        client(f"http://127.0.0.1:{free_port()}").heartbeat([], 1)
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # three backoffs were waited out


def test_shutdown_cuts_a_backoff_short(master: tuple[str, Script]) -> None:
    url, script = master
    script.statuses = [503] * 10
    shutdown = Shutdown()
    slow = MasterClient(url, shutdown=shutdown, retry=RetryPolicy(backoff_factor=30), timeout_s=2)
    slow.node_id, slow.credential = "n-1", "secret-credential"
    threading.Timer(0.3, shutdown.request, args=("SIGTERM",)).start()
    started = time.monotonic()
    with pytest.raises(MasterUnavailable, match="stopped by shutdown"):
        slow.heartbeat([], 1)
    assert time.monotonic() - started < 5
    assert len(script.seen) == 1
