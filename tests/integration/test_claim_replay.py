"""A claim whose reply never reached the agent is answered again, not claimed again.

Real masters under gunicorn, the agent's real ``MasterClient``, and between them a loopback
proxy that passes every request on but eats the reply of the first claim: the master has
committed it, the agent never sees it. The client retries the same message (the same
``claim_id``), at the same master after a dropped connection (SQLite), or at the other master
after the first is killed with -9 between its commit and its reply (two masters, one
PostgreSQL). Either way the agent gets the jobs the lost reply held, with new tokens that
start them, the lost tokens start nothing, and every job keeps one attempt.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests

from ffrtmp.agent.client import MasterClient, RetryPolicy
from ffrtmp.shutdown import Shutdown
from tests.conftest import MasterProcess, master_env, postgres_schema_url, start_master, stop_process
from tests.fake_master import serving
from tests.integration.test_master_process import register, submit
from tests.processes import masters_on


class EatsFirstClaim:
    """What the proxy saw: the claim replies it ate (status and JSON), and the bodies sent."""

    def __init__(self, upstream: str, after_eating: Callable[[], None] = lambda: None) -> None:
        self.upstream, self.after_eating = upstream, after_eating
        self.eaten: list[tuple[int, Any]] = []
        self.claims: list[dict[str, Any]] = []


@contextmanager
def proxy(state: EatsFirstClaim) -> Iterator[str]:
    """Its URL: requests go to ``state.upstream``; the first claim's reply is read, then the
    connection is closed without it (``after_eating`` runs first: the master may be killed)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k: v for k, v in self.headers.items() if k.lower() in
                       ("authorization", "content-type")}
            reply = requests.post(state.upstream + self.path, data=body, headers=headers, timeout=30)
            if self.path.endswith("/claim"):
                state.claims.append(json.loads(body))
                if not state.eaten:
                    state.eaten.append((reply.status_code, reply.json()))
                    state.after_eating()
                    self.close_connection = True  # no reply: the client sees the connection drop
                    return
            self.send_response(reply.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        def log_message(self, *args: object) -> None:
            return

    with serving(Handler) as url:
        yield url


def agent_client(urls: list[str], node_id: str, node: requests.Session) -> MasterClient:
    client = MasterClient(urls, shutdown=Shutdown(), retry=RetryPolicy(backoff_factor=0.05),
                          timeout_s=10)
    client.node_id = node_id
    client.credential = node.headers["Authorization"].removeprefix("Bearer ")
    return client


def assert_replayed(state: EatsFirstClaim, got: list[dict[str, Any]], client: MasterClient,
                    answering: MasterProcess, jobs: list[str]) -> None:
    """The lost reply's jobs came back with new tokens that start them; one attempt each."""
    [(status, lost)] = state.eaten
    assert status == 200 and len(lost["assignments"]) == 2, lost
    assert len({body["claim_id"] for body in state.claims}) == 1, "a resend keeps the claim's id"
    assert sorted(a["job_id"] for a in got) == sorted(a["job_id"] for a in lost["assignments"])
    lost_tokens = {a["job_id"]: a["attempt_token"] for a in lost["assignments"]}
    for assignment in got:
        assert assignment["attempt_token"] != lost_tokens[assignment["job_id"]]
    node = answering.session(client.credential or "")
    for job_id, token in lost_tokens.items():
        refused = node.post(f"{answering.url}/api/v1/jobs/{job_id}/start",
                            json={"attempt_token": token}, timeout=10)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "stale_attempt"
    outcomes = client.starts([(a["job_id"], a["attempt_token"]) for a in got])
    assert all(isinstance(o, dict) and o["state"] == "running" for o in outcomes), outcomes
    ops = answering.session()
    for job_id in jobs:
        job = ops.get(f"{answering.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]
        expected = ("running", 1) if job_id in lost_tokens else ("queued", 0)
        assert (job["state"], len(job["attempts"])) == expected, job


def test_a_dropped_claim_reply_is_answered_again_by_the_same_master(tmp_path: Path) -> None:
    master = start_master(tmp_path, master_env(tmp_path))
    try:
        ops = master.session()
        jobs = [submit(master, ops) for _ in range(3)]
        node_id, node = register(master, "replayer", slots=2)
        state = EatsFirstClaim(master.url)
        with proxy(state) as url:
            client = agent_client([url], node_id, node)
            got = client.claim(2, 0.0)
            assert len(state.claims) == 2, "the claim and its one resend"
            assert_replayed(state, got, client, master, jobs)
    finally:
        stop_process(master.proc)


def test_a_claim_whose_master_died_before_replying_is_answered_by_the_other(
        tmp_path: Path, postgres_server: str) -> None:
    with masters_on(tmp_path, postgres_schema_url(postgres_server)) as (a, b):
        jobs = [submit(a, a.session()) for _ in range(3)]
        node_id, node = register(a, "replayer", slots=2)
        state = EatsFirstClaim(a.url, after_eating=lambda: stop_process(a.proc, signal.SIGKILL))
        with proxy(state) as url:
            client = agent_client([url, b.url], node_id, node)
            got = client.claim(2, 0.0)
        assert a.proc.poll() is not None, "master a was killed before its reply went out"
        assert client.url == b.url
        assert_replayed(state, got, client, b, jobs)
