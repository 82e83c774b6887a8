"""The real master: gunicorn with two workers, a SQLite file, signals and systemd notify."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import (
    ENROLL_TOKEN,
    MasterProcess,
    master_env,
    start_master,
    stop_process,
)
from tests.helpers import wait_until

SPEC = {"input": "testsrc://?duration=1&size=160x120&rate=10",
        "outputs": [{"url": "rtmp://127.0.0.1/live/t", "preset": "h264-480p"}]}


def register(master: MasterProcess, name: str, slots: int = 2, **extra: Any) -> tuple[str, requests.Session]:
    body = {"name": name, "slots": slots, "encoders": ["libx264", "aac"], **extra}
    reply = master.session(ENROLL_TOKEN).post(master.url + "/api/v1/nodes/register", json=body, timeout=10)
    reply.raise_for_status()
    data = reply.json()
    return data["node_id"], master.session(data["credential"])


def submit(master: MasterProcess, ops: requests.Session, **fields: Any) -> str:
    reply = ops.post(master.url + "/api/v1/jobs", json={**SPEC, **fields}, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["job"]["id"]


def job_state(master: MasterProcess, ops: requests.Session, job_id: str) -> str:
    return ops.get(f"{master.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]["state"]


def test_fifty_nodes_claim_five_hundred_jobs_without_double_assignment(master_proc: MasterProcess) -> None:
    m = master_proc
    ops = m.session()
    job_ids = {submit(m, ops) for _ in range(500)}
    nodes = [register(m, f"sim-{i:02d}") for i in range(50)]
    barrier = threading.Barrier(len(nodes))

    def work(node: tuple[str, requests.Session]) -> list[tuple[str, int]]:
        node_id, session = node
        done: list[tuple[str, int]] = []
        barrier.wait()
        while True:
            reply = session.post(f"{m.url}/api/v1/nodes/{node_id}/claim", json={"slots": 2}, timeout=30)
            reply.raise_for_status()
            assignments = reply.json()["assignments"]
            if not assignments:
                return done
            for a in assignments:
                token = {"attempt_token": a["attempt_token"]}
                session.post(f"{m.url}/api/v1/jobs/{a['job_id']}/start", json=token,
                             timeout=30).raise_for_status()
                session.post(f"{m.url}/api/v1/jobs/{a['job_id']}/result",
                             json={**token, "outcome": "succeeded", "exit_code": 0},
                             timeout=30).raise_for_status()
                done.append((a["job_id"], a["attempt"]))

    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        results = [item for part in pool.map(work, nodes) for item in part]
    assert len(results) == 500
    assert {job for job, _ in results} == job_ids
    assert all(attempt == 1 for _, attempt in results)
    states = ops.get(m.url + "/api/v1/jobs?state=succeeded&limit=500", timeout=10).json()["jobs"]
    assert len(states) == 500


def test_lease_expiry_and_offline_detection_run_in_the_background(tmp_path: Path) -> None:
    m = start_master(tmp_path, master_env(tmp_path, FFRTMP_LEASE="1", FFRTMP_NODE_TIMEOUT="2"))
    try:
        ops = m.session()
        unstarted = submit(m, ops)
        node_id, node = register(m, "n1", slots=1)
        [a] = node.post(f"{m.url}/api/v1/nodes/{node_id}/claim", json={"slots": 1},
                        timeout=10).json()["assignments"]
        assert a["job_id"] == unstarted
        wait_until(lambda: job_state(m, ops, unstarted) == "queued", 15, "lease expiry requeue")
        [b] = node.post(f"{m.url}/api/v1/nodes/{node_id}/claim", json={"slots": 1},
                        timeout=10).json()["assignments"]
        node.post(f"{m.url}/api/v1/jobs/{unstarted}/start", json={"attempt_token": b["attempt_token"]},
                  timeout=10).raise_for_status()
        # the node goes silent: offline, its running job lost and not re-queued
        wait_until(lambda: job_state(m, ops, unstarted) == "lost", 15, "running job lost")
        nodes = ops.get(m.url + "/api/v1/nodes", timeout=10).json()["nodes"]
        assert nodes[0]["status"] == "offline"
        metrics = requests.get(m.metrics_url + "/metrics", timeout=10).text
        assert "ffrtmp_nodes_offline 1.0" in metrics
        # its late result for the current attempt is still accepted
        node.post(f"{m.url}/api/v1/jobs/{unstarted}/result",
                  json={"attempt_token": b["attempt_token"], "outcome": "succeeded"},
                  timeout=10).raise_for_status()
        assert job_state(m, ops, unstarted) == "succeeded"
    finally:
        stop_process(m.proc)


def test_acknowledged_job_survives_kill_9(tmp_path: Path) -> None:
    env = master_env(tmp_path)
    m = start_master(tmp_path, env)
    job_id = submit(m, m.session())
    stop_process(m.proc, signal.SIGKILL)
    m2 = start_master(tmp_path, env, name="master2")
    try:
        assert job_state(m2, m2.session(), job_id) == "queued"
    finally:
        stop_process(m2.proc)


def test_sigterm_finishes_in_flight_requests_then_runs_handlers_in_order(tmp_path: Path) -> None:
    m = start_master(tmp_path)
    node_id, node = register(m, "poller", slots=1)
    replies: list[requests.Response] = []
    poll = threading.Thread(target=lambda: replies.append(node.post(
        f"{m.url}/api/v1/nodes/{node_id}/claim", json={"slots": 1, "wait_s": 20}, timeout=60)))
    poll.start()
    log_file = tmp_path / "log" / "master" / "master.log"
    wait_until(lambda: "ffrtmp_claims_waiting 1.0" in _scrape(m), 10, "the long-poll to be in flight")
    started = time.monotonic()
    os.kill(m.proc.pid, signal.SIGTERM)
    poll.join(30)
    assert replies and replies[0].status_code == 200 and replies[0].json() == {"assignments": []}
    assert m.proc.wait(40) == 0
    assert time.monotonic() - started < 30
    text = log_file.read_text()
    order = [text.index(f"shutdown: {name}") for name in ("background duties", "database", "logging")]
    assert order == sorted(order)
    assert text.rstrip().endswith("master stopped")


def _scrape(m: MasterProcess) -> str:
    return requests.get(m.metrics_url + "/metrics", timeout=10).text


def test_ready_notification_reaches_a_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    m = start_master(tmp_path, {**master_env(tmp_path), "NOTIFY_SOCKET": str(path)}, wait_ready=False)
    try:
        messages = []
        while not any("READY=1" in msg for msg in messages):
            messages.append(sock.recv(4096).decode())
        assert requests.get(m.url + "/health", timeout=10).status_code == 200
    finally:
        stop_process(m.proc)
        sock.close()


def test_journal_stream_lines_carry_priorities(tmp_path: Path) -> None:
    m = start_master(tmp_path, {**master_env(tmp_path), "JOURNAL_STREAM": "8:1234"})
    try:
        ops = m.session()
        job_id = submit(m, ops)
        ops.post(f"{m.url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
        wait_until(lambda: f"job={job_id}" in m.output(), 10, "job line in stdout")
    finally:
        stop_process(m.proc)
    lines = [line for line in m.output().splitlines() if f"job={job_id}" in line]
    assert lines and all(line.startswith("<6>INFO ffrtmp.master.store:") for line in lines)
    file_lines = (tmp_path / "log" / "master" / "master.log").read_text().splitlines()
    assert any(f"job={job_id}" in line and line[:4].isdigit() for line in file_lines)


def test_request_counters_sum_every_gunicorn_worker(master_proc: MasterProcess) -> None:
    m = master_proc
    session = requests.Session()  # keep-alive to one worker, and new connections to any
    for _ in range(20):
        requests.get(m.url + "/health", timeout=10)
        session.get(m.url + "/health", timeout=10)
    wait_until(lambda: 'ffrtmp_http_requests_total{method="GET",route="/health",status="200"} 40.0'
               in requests.get(m.metrics_url + "/metrics", timeout=10).text, 10, "summed counters")
    assert requests.get(m.metrics_url + "/health", timeout=10).json()["status"] == "healthy"
    refused = requests.get(m.metrics_url + "/api/v1/jobs", timeout=10)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_lifecycle_fencing_and_idempotent_results_under_gunicorn(master_proc: MasterProcess) -> None:
    m = master_proc
    ops = m.session()
    job_id = submit(m, ops)
    node_id, node = register(m, "fenced", slots=1)

    def claim() -> dict[str, Any]:
        [a] = node.post(f"{m.url}/api/v1/nodes/{node_id}/claim", json={"slots": 1}, timeout=10).json()[
            "assignments"]
        node.post(f"{m.url}/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]},
                  timeout=10).raise_for_status()
        return a

    first = claim()
    failed = {"attempt_token": first["attempt_token"], "outcome": "failed", "exit_code": 1}
    replies = [node.post(f"{m.url}/api/v1/jobs/{job_id}/result", json=failed, timeout=10) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200] and replies[0].json() == replies[1].json()
    ops.post(f"{m.url}/api/v1/jobs/{job_id}/retry", timeout=10).raise_for_status()
    second = claim()
    stale = node.post(f"{m.url}/api/v1/jobs/{job_id}/result",
                      json={**failed, "outcome": "succeeded", "exit_code": 0}, timeout=10)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "result_conflict"
    old_start = node.post(f"{m.url}/api/v1/jobs/{job_id}/start",
                          json={"attempt_token": first["attempt_token"]}, timeout=10)
    assert old_start.status_code == 409 and old_start.json()["error"]["code"] == "stale_attempt"
    ops.post(f"{m.url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    beat = node.post(f"{m.url}/api/v1/nodes/{node_id}/heartbeat",
                     json={"running": [{"job_id": job_id, "attempt": 2}]}, timeout=10).json()
    assert beat["cancel"] == [{"job_id": job_id, "attempt": 2}]
    node.post(f"{m.url}/api/v1/jobs/{job_id}/result", json={"attempt_token": second["attempt_token"],
              "outcome": "canceled", "exit_code": 143}, timeout=10).raise_for_status()
    job = ops.get(f"{m.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]
    assert job["state"] == "canceled" and [a["state"] for a in job["attempts"]] == ["failed", "canceled"]
    assert [h["to"] for h in job["history"]] == ["queued", "assigned", "running", "failed", "queued",
                                                 "assigned", "running", "canceled"]
