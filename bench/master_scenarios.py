"""The master benchmark's scenarios: claim long-poll latency, no-op dispatch, heartbeat load.

Each drives a started master over HTTP the way agents and operators do and returns its
figures; ``master_bench.py`` starts the masters and reports.
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from tests.processes import wait_until

from bench.harness import REQUEST_TIMEOUT_S, BenchError, summarize
from bench.master_client import (
    CpuMeter,
    Master,
    Node,
    Workers,
    cpu_per_op,
    expect,
    finish,
    register_nodes,
    submit,
)


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much work each scenario does; every count and duration is bounded."""

    name: str
    latency_agents: int = 10
    latency_jobs: int = 200
    latency_gap_s: tuple[float, float] = (0.05, 0.1)  # pause between one claim and the next submit
    latency_wait_s: float = 20.0
    idle_window_s: float = 5.0  # server CPU measured while the agents only long-poll
    dispatch_jobs: int = 2000
    dispatch_agents: tuple[int, ...] = (4, 8)
    health_window_s: float = 5.0
    heartbeat_nodes: int = 2000
    heartbeat_rate: float = 200.0  # per second: nodes / rate is each node's interval
    heartbeat_window_s: float = 30.0
    heartbeat_threads: int = 16
    register_threads: int = 8
    probe_commits: int = 300
    deadline_s: float = 600.0  # the whole run stops by then, finished or not


FULL = Profile("full")
QUICK = Profile("quick", latency_jobs=40, idle_window_s=2.0, dispatch_jobs=300, health_window_s=2.0,
                heartbeat_nodes=200, heartbeat_rate=40.0, heartbeat_window_s=6.0, deadline_s=240.0)

# --- scenario 1: claim long-poll latency ---


class LatencyAgents:
    """Idle agents that long-poll, each finishing what it claims and queueing when it got it."""

    def __init__(self, master: Master, profile: Profile, workers: Workers) -> None:
        self.master, self.profile, self.workers = master, profile, workers
        self.claimed: queue.Queue[tuple[str, float]] = queue.Queue()
        self.idle: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()

    def start(self, nodes: list[Node]) -> None:
        for node in nodes:
            self.workers.spawn(self._agent, node)

    def _agent(self, node: Node) -> None:
        session = self.master.session(node.credential)
        url = f"{self.master.url}/api/v1/nodes/{node.id}/claim"
        body = {"slots": 1, "wait_s": self.profile.latency_wait_s}
        while not self.stop.is_set():
            try:
                reply = session.post(url, json=body, timeout=self.profile.latency_wait_s + REQUEST_TIMEOUT_S)
            except requests.ConnectionError:
                if self.stop.is_set():
                    return
                raise
            received = time.perf_counter()
            if self.stop.is_set() and reply.status_code != 200:
                return
            expect(reply, 200)
            for assignment in reply.json()["assignments"]:
                self.claimed.put((assignment["job_id"], received))
                finish(session, self.master, assignment)
                self.idle.put(assignment["job_id"])

    def one_job(self, ops: requests.Session) -> tuple[float, bool]:
        """Submit one job; return submit-acknowledged → claim-received, and whether the claim came first."""
        job_id = submit(ops, self.master)
        acknowledged = time.perf_counter()
        got, received = self.claimed.get(timeout=REQUEST_TIMEOUT_S)
        if got != job_id:
            raise BenchError(f"claimed {got}, expected {job_id}")
        if self.idle.get(timeout=REQUEST_TIMEOUT_S) != job_id:
            raise BenchError("jobs finished out of order")
        self.workers.check()
        return max(0.0, received - acknowledged), received < acknowledged


def bench_claim_latency(master: Master, profile: Profile, workers: Workers) -> dict[str, Any]:
    """Idle agents long-poll; one job at a time goes in; measure submit-acknowledged → claimed.

    The agents' last long-polls end only when the master stops, so the caller owns
    ``workers`` and joins them after that.
    """
    nodes, _ = register_nodes(master, profile.latency_agents, prefix="lp",
                              threads=profile.register_threads)
    agents = LatencyAgents(master, profile, workers)
    agents.start(nodes)
    ops = master.session()
    rng = random.Random(2)
    try:
        wait_until(lambda: master.claims_waiting() == profile.latency_agents, 10.0, "every agent waiting")
    except AssertionError as exc:
        raise BenchError(str(exc)) from None
    with CpuMeter(master.pid) as idle_cpu:
        time.sleep(profile.idle_window_s)
    latencies: list[float] = []
    early = 0  # the claim answer overtook the submit answer
    try:
        for _ in range(profile.latency_jobs):
            time.sleep(rng.uniform(*profile.latency_gap_s))
            latency, first = agents.one_job(ops)
            latencies.append(latency)
            early += first
    except queue.Empty:
        workers.check()
        raise BenchError("a submitted job was not claimed within 30 s") from None
    finally:
        agents.stop.set()
    return {
        "agents": profile.latency_agents, "jobs": len(latencies), "wait_s": profile.latency_wait_s,
        "latency": summarize(latencies), "claimed_before_submit_ack": early,
        "idle": {"window_s": profile.idle_window_s, **idle_cpu.result},
    }


# --- scenario 2: no-op dispatch throughput, with the /health ceiling beside it ---


def bench_health(master: Master, threads: int, window_s: float) -> dict[str, Any]:
    """Requests per second of GET /health: the HTTP stack's ceiling with these client threads."""
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    workers = Workers()

    def client(index: int, until: list[float]) -> None:
        session = master.session(auth=False)
        start.wait()
        while time.perf_counter() < until[0]:
            sent = time.perf_counter()
            expect(session.get(master.url + "/health", timeout=REQUEST_TIMEOUT_S), 200)
            latencies[index].append(time.perf_counter() - sent)
            counts[index] += 1

    until = [float("inf")]
    for index in range(threads):
        workers.spawn(client, index, until)
    with CpuMeter(master.pid) as cpu:
        until[0] = time.perf_counter() + window_s
        start.wait()
        workers.join(window_s + REQUEST_TIMEOUT_S)
    workers.check()
    total = sum(counts)
    return {"threads": threads, "requests": total,
            "requests_per_s": round(total / cpu.result["wall_s"], 1),
            "latency": summarize([x for part in latencies for x in part]), "cpu": cpu.result,
            "per_request": cpu_per_op(cpu.result, total)}


def presubmit(master: Master, profile: Profile, threads: int) -> tuple[set[str], dict[str, Any]]:
    """Submit the round's jobs from ``threads`` threads; return their ids and the submit figures."""
    ops_local = threading.local()
    per_thread = [profile.dispatch_jobs // threads + (i < profile.dispatch_jobs % threads)
                  for i in range(threads)]

    def submit_some(count: int) -> list[str]:
        if not hasattr(ops_local, "session"):
            ops_local.session = master.session()
        return [submit(ops_local.session, master) for _ in range(count)]

    with CpuMeter(master.pid) as cpu, ThreadPoolExecutor(threads) as pool:
        submitted = {job for part in pool.map(submit_some, per_thread) for job in part}
    return submitted, {"threads": threads, "jobs_per_s": round(len(submitted) / cpu.result["wall_s"], 1),
                       "cpu": cpu.result, "per_job": cpu_per_op(cpu.result, len(submitted))}


def drain(master: Master, node: Node, barrier: threading.Barrier, done: list[str],
          timings: dict[str, list[float]]) -> None:
    """One agent: claim without waiting → start → result, until a claim comes back empty."""
    session = master.session(node.credential)
    url = f"{master.url}/api/v1/nodes/{node.id}/claim"
    barrier.wait()
    while True:
        sent = time.perf_counter()
        reply = session.post(url, json={"slots": 1, "wait_s": 0}, timeout=REQUEST_TIMEOUT_S)
        timings["claim"].append(time.perf_counter() - sent)
        expect(reply, 200)
        assignments = reply.json()["assignments"]
        if not assignments:
            return
        for assignment in assignments:
            finish(session, master, assignment, timings)
            done.append(assignment["job_id"])


def bench_dispatch_round(master: Master, profile: Profile, agents: int) -> dict[str, Any]:
    """Pre-submit N jobs, then K agents claim → start → result until the queue is empty."""
    nodes, _ = register_nodes(master, agents, prefix=f"tp{agents}", threads=agents)
    submitted, submit_figures = presubmit(master, profile, agents)
    done: list[list[str]] = [[] for _ in range(agents)]
    timings: list[dict[str, list[float]]] = [{"claim": [], "start": [], "result": []}
                                             for _ in range(agents)]
    barrier = threading.Barrier(agents + 1)
    workers = Workers()
    for index, node in enumerate(nodes):
        workers.spawn(drain, master, node, barrier, done[index], timings[index])
    with CpuMeter(master.pid) as cpu:
        barrier.wait()
        workers.join(profile.deadline_s)
    workers.check()
    finished = [job for part in done for job in part]
    if len(finished) != len(set(finished)) or set(finished) != submitted:
        raise BenchError(f"dispatched {len(finished)} ({len(set(finished))} distinct) "
                         f"of {len(submitted)} submitted jobs")
    wall = cpu.result["wall_s"]
    requests_made = sum(len(t[op]) for t in timings for op in t)
    merged = {op: summarize([x for t in timings for x in t[op]]) for op in ("claim", "start", "result")}
    return {
        "agents": agents, "jobs": len(finished), "submit": submit_figures,
        "wall_s": wall, "jobs_per_s": round(len(finished) / wall, 1),
        "agent_requests": requests_made, "requests_per_s": round(requests_made / wall, 1),
        "end_to_end_jobs_per_s": round(len(finished) / (wall + submit_figures["cpu"]["wall_s"]), 1),
        "latency": merged, "cpu": cpu.result, "per_job": cpu_per_op(cpu.result, len(finished)),
    }


def bench_dispatch(master: Master, profile: Profile) -> list[dict[str, Any]]:
    rounds = []
    for agents in profile.dispatch_agents:
        health = bench_health(master, agents, profile.health_window_s)
        result = bench_dispatch_round(master, profile, agents)
        result["health"] = health
        result["vs_health"] = round(result["requests_per_s"] / health["requests_per_s"], 3)
        rounds.append(result)
    return rounds


# --- scenario 3: many agents heartbeating ---


class Heartbeats:
    """Client threads that send each heartbeat at its scheduled time, recording latency and lag."""

    def __init__(self, master: Master, nodes: list[Node], profile: Profile) -> None:
        self.master, self.nodes, self.profile = master, nodes, profile
        self.threads = profile.heartbeat_threads
        self.total = int(profile.heartbeat_rate * profile.heartbeat_window_s)
        self.latency: list[list[float]] = [[] for _ in range(self.threads)]
        self.lag: list[list[float]] = [[] for _ in range(self.threads)]
        self.statuses: list[dict[int, int]] = [{} for _ in range(self.threads)]
        self.epoch = 0.0
        self.ready = threading.Barrier(self.threads + 1)

    def client(self, index: int) -> None:
        session = self.master.session(auth=False)
        body = {"running": [], "free_slots": 1}
        self.ready.wait()
        for k in range(index, self.total, self.threads):
            due = self.epoch + k / self.profile.heartbeat_rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            node = self.nodes[k % len(self.nodes)]
            sent = time.perf_counter()
            reply = session.post(f"{self.master.url}/api/v1/nodes/{node.id}/heartbeat", json=body,
                                 headers={"Authorization": f"Bearer {node.credential}"},
                                 timeout=REQUEST_TIMEOUT_S)
            received = time.perf_counter()
            statuses = self.statuses[index]
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            self.latency[index].append(received - sent)
            self.lag[index].append(max(0.0, sent - due))

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for part in self.statuses:
            for status, n in part.items():
                counts[str(status)] = counts.get(str(status), 0) + n
        return counts


def bench_heartbeat(master: Master, profile: Profile) -> dict[str, Any]:
    """Open-loop heartbeats at a fixed rate, each node every ``nodes / rate`` seconds.

    Each heartbeat has a scheduled time; a thread that falls behind sends at once, and the
    lag is reported, so a slow server cannot hide by slowing the client down.
    """
    nodes, register_rate = register_nodes(master, profile.heartbeat_nodes, prefix="hb",
                                          threads=profile.register_threads)
    beats = Heartbeats(master, nodes, profile)
    workers = Workers()
    for index in range(beats.threads):
        workers.spawn(beats.client, index)
    with CpuMeter(master.pid) as cpu:
        beats.epoch = time.perf_counter() + 0.05
        beats.ready.wait()
        workers.join(profile.heartbeat_window_s + profile.deadline_s / 4)
    workers.check()
    sent_total = sum(len(part) for part in beats.latency)
    return {
        "nodes": profile.heartbeat_nodes, "register_per_s": round(register_rate, 1),
        "target_rate_per_s": profile.heartbeat_rate,
        "interval_s": round(profile.heartbeat_nodes / profile.heartbeat_rate, 2),
        "window_s": profile.heartbeat_window_s, "client_threads": beats.threads,
        "heartbeats": sent_total, "achieved_rate_per_s": round(sent_total / cpu.result["wall_s"], 1),
        "statuses": beats.status_counts(),
        "latency": summarize([x for part in beats.latency for x in part]),
        "schedule_lag": summarize([x for part in beats.lag for x in part]),
        "cpu": cpu.result, "per_heartbeat": cpu_per_op(cpu.result, sent_total),
    }
