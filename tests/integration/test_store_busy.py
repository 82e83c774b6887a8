"""A write transaction that holds SQLite's lock past the busy timeout: a real master answers
503 ``store_busy`` on every path (or waits), never 500, its duties keep running, and a master
that boots meanwhile waits to migrate instead of exiting."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import MasterProcess, start_master, stop_process
from tests.processes import ENROLL_TOKEN, await_ready, master_env, wait_until

SPEC = {"input": "testsrc://?duration=1&size=160x120&rate=10", "intent": "busy"}


@contextlib.contextmanager
def held_write_lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another program's write transaction, open until the block ends."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {token}", "Connection": "close"})
    return s


class Node:
    def __init__(self, master: MasterProcess) -> None:
        reply = session(ENROLL_TOKEN).post(master.url + "/api/v1/nodes/register", timeout=30,
                                           json={"name": "busy-node", "slots": 4,
                                                 "encoders": ["libx264", "aac"]})
        reply.raise_for_status()
        self.id, self.http = reply.json()["node_id"], session(reply.json()["credential"])

    def claim(self, master: MasterProcess, wait_s: float = 0) -> requests.Response:
        return self.http.post(f"{master.url}/api/v1/nodes/{self.id}/claim", timeout=60,
                              json={"slots": 1, "wait_s": wait_s})


def spec(master: MasterProcess, name: str) -> dict[str, Any]:
    return {**SPEC, "outputs": [{"url": f"file://{master.env['FFRTMP_MEDIA_ROOTS']}/{name}.mp4",
                                 "preset": "h264-480p"}]}


def requests_of_every_path(master: MasterProcess, node: Node) -> dict[str, Callable[[], requests.Response]]:
    ops = master.session()
    ops.headers["Connection"] = "close"
    [held] = node.claim(master).json()["assignments"]  # a job to start and one to report on
    [other] = node.claim(master).json()["assignments"]
    node.http.post(f"{master.url}/api/v1/jobs/{other['job_id']}/start", timeout=30,
                   json={"attempt_token": other["attempt_token"]}).raise_for_status()
    queued = ops.post(master.url + "/api/v1/jobs", json=spec(master, "queued"), timeout=30).json()["job"]
    api = master.url + "/api/v1"
    return {
        "submit": lambda: ops.post(api + "/jobs", json=spec(master, "during"), timeout=60),
        "cancel": lambda: ops.post(f"{api}/jobs/{queued['id']}/cancel", timeout=60),
        "claim": lambda: node.claim(master),
        "long-poll claim": lambda: node.claim(master, wait_s=2),
        "heartbeat": lambda: node.http.post(f"{api}/nodes/{node.id}/heartbeat", timeout=60, json={
            "running": [{"job_id": other["job_id"], "attempt": other["attempt"]}]}),
        "start": lambda: node.http.post(f"{api}/jobs/{held['job_id']}/start", timeout=60,
                                        json={"attempt_token": held["attempt_token"]}),
        "result": lambda: node.http.post(f"{api}/jobs/{other['job_id']}/result", timeout=60, json={
            "attempt_token": other["attempt_token"], "outcome": "succeeded", "exit_code": 0}),
        "register": lambda: session(ENROLL_TOKEN).post(api + "/nodes/register", timeout=60, json={
            "name": "another-node", "slots": 1, "encoders": ["libx264"]}),
    }


def all_at_once(calls: dict[str, Callable[[], requests.Response]]) -> dict[str, requests.Response]:
    answers: dict[str, requests.Response] = {}

    def run(name: str, call: Callable[[], requests.Response]) -> None:
        answers[name] = call()

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(answers) == set(calls), f"no answer from {set(calls) - set(answers)}"
    return answers


@pytest.fixture
def master(tmp_path: Path) -> Iterator[MasterProcess]:
    proc = start_master(tmp_path, master_env(tmp_path, FFRTMP_WORKERS="2"))
    yield proc
    stop_process(proc.proc)


def test_a_lock_held_past_the_busy_timeout_answers_503_store_busy_on_every_path(
        master: MasterProcess) -> None:
    node = Node(master)
    for name in ("held", "other"):
        master.session().post(master.url + "/api/v1/jobs", json=spec(master, name),
                              timeout=30).raise_for_status()
    calls = requests_of_every_path(master, node)
    database = Path(master.env["FFRTMP_DATABASE"].removeprefix("sqlite:///"))
    with held_write_lock(database):
        answers = all_at_once(calls)
        # readiness reuses a recent probe's outcome, then names the failing check
        ready = wait_until(lambda: (r := requests.get(master.url + "/ready", timeout=60))
                           .status_code == 503 and r.json(), 60, "/ready 503")
    assert ready["checks"]["database_writes"].startswith("error: store_busy"), ready
    wrong = {name: (r.status_code, r.text[:200]) for name, r in answers.items()
             if r.status_code != 503 or r.json()["error"]["code"] != "store_busy"}
    assert wrong == {}, f"{wrong}\n{master.output()[-4000:]}"
    # the lock is gone: the same requests go through, and nothing failed unexpectedly meanwhile
    assert calls["submit"]().status_code == 201
    wait_until(lambda: requests.get(master.url + "/ready", timeout=30).status_code == 200, 30,
               "ready again")
    assert "Traceback" not in master.output(), master.output()[-4000:]


def test_a_master_that_boots_while_the_lock_is_held_waits_to_migrate(tmp_path: Path) -> None:
    env = master_env(tmp_path)
    database = Path(env["FFRTMP_DATABASE"].removeprefix("sqlite:///"))
    with held_write_lock(database):
        master = start_master(tmp_path, env, wait_ready=False)
        try:
            # past one busy timeout and into a second wait: it would have exited by now
            wait_until(lambda: master.output().count("waiting for the database lock") >= 2, 60,
                       "the master waiting twice to migrate", interval=0.2)
            assert master.proc.poll() is None, master.output()
        except BaseException:
            stop_process(master.proc)
            raise
    try:
        await_ready(master, 60, "master")
        assert "applied schema migration 1" in master.output()
    finally:
        stop_process(master.proc)
