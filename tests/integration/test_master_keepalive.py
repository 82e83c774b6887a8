"""A real gunicorn master closes a kept-alive connection after ``KEEPALIVE_REQUESTS`` answers.

A farm's agents keep a few connections open for good, and the workers race to accept each:
without a bound, one worker could hold nearly all of them and the master ran on one core
(``docs/performance.md``). A closed connection is made again, and accepted by the worker that
is free first.
"""

from __future__ import annotations

import http.client
import json

from ffrtmp.master.gunicorn_worker import KEEPALIVE_REQUESTS
from tests.conftest import MasterProcess


def _health(conn: http.client.HTTPConnection) -> str | None:
    conn.request("GET", "/health")
    reply = conn.getresponse()
    assert reply.status == 200 and json.loads(reply.read())["status"] == "healthy"
    return reply.getheader("Connection")


def test_the_last_answer_a_connection_may_have_says_close_and_the_next_connects_again(
        master_proc: MasterProcess) -> None:
    host, port = master_proc.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        first = [_health(conn) for _ in range(KEEPALIVE_REQUESTS - 1)]
        assert conn.sock is not None and "close" not in first  # one connection so far
        local = conn.sock.getsockname()
        assert _health(conn) == "close"
        assert conn.sock is None  # http.client dropped it, as every client must
        assert _health(conn) != "close"
        assert conn.sock.getsockname() != local  # a new connection, counted from one again
    finally:
        conn.close()
