"""A start whose reply never arrives: the agent keeps the claimed job, unlaunched, until the
master answers its start, and then runs it (confirmed) or forgets it (refused), once.

Everything is real (master under gunicorn, agent, wrapper, ffmpeg, SQLite) except the network
between agent and master: ``LossyLink``, a TCP proxy, loses exactly what a test asks it to.
A reply lost on the wire cannot be produced on demand by real processes alone, so that one
thing is simulated; the proxy forwards every other byte unchanged.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.layout import JobDir, attempt_name
from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    master_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, wait_final
from tests.integration.test_agent_resilience import realtime_job

START = re.compile(rb"^POST \S*/starts? HTTP/", re.MULTILINE)  # one start, or a batch of them
FINAL_HISTORY = ["queued", "assigned", "running", "succeeded"]


class LossyLink:
    """Agent -> proxy -> master. ``lose_next_start_reply(then)``: the next start goes through,
    its reply is dropped and the agent's connection closed, and ``then`` runs once the master
    has answered (so the start is committed). ``cut_starts``: while set, each start request is
    cut before it reaches the master (a connection reset, as a failing network does)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.cut_starts = threading.Event()
        self._lose: Callable[[], None] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next_start_reply(self, then: Callable[[], None]) -> None:
        self._lose = then

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:  # the master is down: the agent sees its connection closed
            client.close()
            return
        upstream.settimeout(None)
        lost: list[Callable[[], None]] = []  # set when this connection's reply is to be lost
        threading.Thread(target=self._replies, args=(upstream, client, lost), daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if START.search(data):
                    if self.cut_starts.is_set():
                        break
                    with self._lock:
                        then, self._lose = self._lose, None
                    if then is not None:
                        lost.append(then)
                upstream.sendall(data)
        _close(client, upstream)

    @staticmethod
    def _replies(upstream: socket.socket, client: socket.socket,
                 lost: list[Callable[[], None]]) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if lost:  # the master answered the start: committed; its reply never arrives
                    lost[0]()  # first: a retry must not find the master still answering
                    _close(client, upstream)
                    return
                client.sendall(data)
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def link_to(request: pytest.FixtureRequest) -> Iterator[Callable[[MasterProcess], LossyLink]]:
    links: list[LossyLink] = []

    def make(master: MasterProcess) -> LossyLink:
        links.append(LossyLink(master.url))
        return links[-1]

    yield make
    for link in links:
        link.close()


def attempt_states(database: Path, job_id: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT state FROM attempts WHERE job_id = ? ORDER BY attempt",
                            (job_id,)).fetchall()
    return [row[0] for row in rows]


def launches(*agents: AgentProcess) -> int:
    return sum(a.output().count("launched wrapper") for a in agents)


def pending_marker(agent: AgentProcess, job_id: str, attempt: int = 1) -> Path:
    return JobDir(agent.state_dir / "jobs" / attempt_name(job_id, attempt)).start_pending


def history(done: dict[str, Any]) -> list[str]:
    return [h["to"] for h in done["history"]]


@pytest.mark.slow
def test_a_start_committed_while_the_master_dies_runs_once_after_it_returns(
        tmp_path: Path, agents: list[AgentProcess],
        link_to: Callable[[MasterProcess], LossyLink]) -> None:
    # a short node timeout: a committed attempt left out of heartbeats is ended lost in ~11 s
    env = master_env(tmp_path, FFRTMP_NODE_TIMEOUT="10")
    master = start_master(tmp_path, env)
    masters = [master]
    try:
        link = link_to(master)
        agent = start_agent(tmp_path, master, env=agent_env(tmp_path, master, FFRTMP_MASTER_URL=link.url,
                                                            FFRTMP_SLOTS="1"))
        agents.append(agent)
        link.lose_next_start_reply(lambda: stop_process(master.proc, signal.SIGKILL))
        job_id = realtime_job(master, 4, "lost-reply")
        wait_until(lambda: master.proc.poll() is not None, 30, "the master killed after the start")
        assert attempt_states(tmp_path / "master.db", job_id) == ["running"]  # committed
        wait_until(lambda: "start not confirmed" in agent.output(), 30, "the agent's start retries")
        assert pending_marker(agent, job_id).exists() and launches(agent) == 0
        master = start_master(tmp_path, env, name="master-again")
        masters.append(master)
        done = wait_final(master, job_id, timeout=90)
    finally:
        for each in masters:
            stop_process(each.proc)
            print(f"--- {each.log_path.name} ---\n{each.output()}")
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1, done
    assert history(done) == FINAL_HISTORY
    assert launches(agent) == 1
    assert not pending_marker(agent, job_id).exists()


@pytest.mark.slow
def test_a_start_the_master_has_expired_meanwhile_is_forgotten_not_run(
        tmp_path: Path, agents: list[AgentProcess],
        link_to: Callable[[MasterProcess], LossyLink]) -> None:
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_LEASE="2"))
    try:
        link = link_to(master)
        link.cut_starts.set()
        agent = start_agent(tmp_path, master, env=agent_env(tmp_path, master, FFRTMP_MASTER_URL=link.url,
                                                            FFRTMP_SLOTS="1"))
        agents.append(agent)
        job_id = realtime_job(master, 2, "expired")
        wait_until(lambda: pending_marker(agent, job_id).exists(), 40, "a start kept unconfirmed")
        # listed in every heartbeat meanwhile, yet the master's lease still decides: it expires
        wait_until(lambda: attempt_states(tmp_path / "master.db", job_id)[:1] == ["expired"], 30,
                   "the lease of the unconfirmed attempt to run out")
        link.cut_starts.clear()
        done = wait_final(master, job_id, timeout=90)
    finally:
        stop_process(master.proc)
        print(f"--- master ---\n{master.output()}")
    assert done["state"] == "succeeded", done
    assert attempt_states(tmp_path / "master.db", job_id) == ["expired", "succeeded"]
    assert history(done) == ["queued", "assigned", "queued", "assigned", "running", "succeeded"]
    assert launches(agent) == 1  # the second attempt only
    assert not (agent.state_dir / "jobs" / attempt_name(job_id, 1)).exists()
    assert "start refused" in agent.output()


@pytest.mark.slow
def test_an_agent_killed_while_its_start_is_unconfirmed_confirms_it_before_running_it(
        tmp_path: Path, agents: list[AgentProcess],
        link_to: Callable[[MasterProcess], LossyLink]) -> None:
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_LEASE="300"))
    try:
        link = link_to(master)
        link.cut_starts.set()
        env = agent_env(tmp_path, master, FFRTMP_MASTER_URL=link.url, FFRTMP_SLOTS="1")
        agent = start_agent(tmp_path, master, env=env)
        agents.append(agent)
        job_id = realtime_job(master, 3, "restart-pending")
        wait_until(lambda: pending_marker(agent, job_id).exists(), 40, "a start kept unconfirmed")
        agent.proc.kill()
        agent.proc.wait(10)
        assert job(master, job_id)["state"] == "assigned" and launches(agent) == 0
        link.cut_starts.clear()
        again = start_agent(tmp_path, master, env=env, name="agent-again")
        agents.append(again)
        done = wait_final(master, job_id, timeout=90)
    finally:
        stop_process(master.proc)
        print(f"--- master ---\n{master.output()}")
    assert done["state"] == "succeeded" and len(done["attempts"]) == 1, done
    assert history(done) == FINAL_HISTORY
    assert "re-adopting a job awaiting its start confirmation" in again.output()
    assert "lost track" not in again.output()
    assert launches(again) == 1
