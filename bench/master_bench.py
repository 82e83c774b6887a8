"""Master benchmark: claim long-poll latency, no-op dispatch throughput, heartbeat load.

Each scenario starts a real ``ffrtmp master`` (gunicorn with its default workers and
threads) on free loopback ports with a fresh temporary SQLite file, drives it over HTTP the
way agents and operators do, and stops it. The figures are compared with the goals of the
master's performance contract and printed as a table and as JSON; the JSON is also written
to ``bench/results/master-<timestamp>.json``.

The load generator runs on the same machine and shares its CPUs with the server, so every
phase also reports the CPU time the client and the server used: a low figure can be the
client's fault, and the CPU split says how much.

    python bench/master_bench.py            # full run, 2 to 3 minutes
    python bench/master_bench.py --quick    # small counts, under a minute
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import os
import platform
import queue
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import requests

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REQUEST_TIMEOUT_S = 30.0


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

GOALS = {
    "claim_latency_p50_ms": ("<=", 50.0),
    "claim_latency_p99_ms": ("<=", 250.0),
    "dispatch_jobs_per_s": (">=", 500.0),
    "heartbeat_p99_ms": ("<=", 100.0),
}


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (master down, wrong answers)."""


# --- statistics and CPU accounting ---


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds; nearest-rank never invents a value."""
    if not seconds:
        return {"count": 0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    ordered = sorted(seconds)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
        return round(ordered[index] * 1000, 2)

    return {"count": len(ordered), "p50_ms": rank(50), "p90_ms": rank(90), "p99_ms": rank(99),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(sum(ordered) / len(ordered) * 1000, 2)}


class CpuMeter:
    """CPU seconds used by the server (arbiter and workers) and by this client over a window."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start = (0.0, 0.0, 0.0)

    def _server_cpu(self) -> float:
        try:
            root = psutil.Process(self.server_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), self._server_cpu(), time.process_time())
        self.result: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._start[0]
        server = self._server_cpu() - self._start[1]
        client = time.process_time() - self._start[2]
        cores = os.cpu_count() or 1
        self.result = {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(server, 3),
            "client_cpu_s": round(client, 3),
            "server_cores_used": round(server / wall, 2) if wall else 0.0,
            "client_cores_used": round(client / wall, 2) if wall else 0.0,
            "cpu_busy_pct": round(100 * (server + client) / (wall * cores), 1) if wall else 0.0,
        }


def cpu_per_op(cpu: dict[str, float], ops: int) -> dict[str, float]:
    """CPU milliseconds per operation on each side, and the rates they allow on this machine.

    ``cpu_bound_per_s`` is the rate once client and server fill every CPU; ``server_only_per_s``
    is the rate if the server had every CPU to itself (a client on another machine). Both are
    upper bounds: they ignore waiting on locks and fsync.
    """
    if not ops:
        return {"server_cpu_ms": 0.0, "client_cpu_ms": 0.0, "cpu_bound_per_s": 0.0, "server_only_per_s": 0.0}
    server_ms = cpu["server_cpu_s"] * 1000 / ops
    client_ms = cpu["client_cpu_s"] * 1000 / ops
    cores = os.cpu_count() or 1
    both = server_ms + client_ms
    return {"server_cpu_ms": round(server_ms, 3), "client_cpu_ms": round(client_ms, 3),
            "cpu_bound_per_s": round(cores * 1000 / both, 1) if both else 0.0,
            "server_only_per_s": round(cores * 1000 / server_ms, 1) if server_ms else 0.0}


# --- the master process ---


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll a condition against a deadline instead of sleeping and hoping."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Master:
    """A real ``ffrtmp master`` with its files under a temporary directory; stopped on exit."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.operator_token = secrets.token_urlsafe(24)
        self.enroll_token = secrets.token_urlsafe(24)
        (self.dir / "api-token").write_text(self.operator_token + "\n")
        (self.dir / "enroll-token").write_text(self.enroll_token + "\n")
        self.media = self.dir / "media"
        (self.media / "out").mkdir(parents=True)
        self.port = free_port()
        self.env = {
            "FFRTMP_MASTER_BIND": f"127.0.0.1:{self.port}",
            "FFRTMP_METRICS_BIND": f"127.0.0.1:{free_port()}",
            "FFRTMP_DATABASE": f"sqlite:///{self.dir / 'master.db'}",
            "FFRTMP_API_TOKEN_FILE": str(self.dir / "api-token"),
            "FFRTMP_ENROLL_TOKEN_FILE": str(self.dir / "enroll-token"),
            "FFRTMP_MEDIA_ROOTS": str(self.media),
            "FFRTMP_LOG_DIR": str(self.dir / "log"),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = "http://" + self.env["FFRTMP_METRICS_BIND"]
        self.proc: subprocess.Popen[bytes] | None = None
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def start(self, timeout_s: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FFRTMP_") and k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        env.update(self.env)
        with (self.dir / "master.out").open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ffrtmp", "master"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"master exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"master not ready after {timeout_s}s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM the process group (long-polls end at once), escalating after a bound."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:  # an idle kept-alive connection would hold a stopping worker 2 s
            session.close()
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def claims_waiting(self) -> float:
        """Long-polling claims right now, summed over the workers (``ffrtmp_claims_waiting``)."""
        text = requests.get(self.metrics_url + "/metrics", timeout=REQUEST_TIMEOUT_S).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("ffrtmp_claims_waiting"))

    def output(self) -> str:
        path = self.dir / "master.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def session(self, token: str | None = None, *, auth: bool = True) -> requests.Session:
        """A client session (operator token unless given); closed when the master stops."""
        s = requests.Session()
        if auth:
            s.headers["Authorization"] = f"Bearer {token or self.operator_token}"
        with self._sessions_lock:
            self._sessions.append(s)
        return s

    def spec(self) -> dict[str, Any]:
        """A small valid job; nothing runs it, the agents here only report a result."""
        return {"input": "testsrc://?duration=1&size=160x120&rate=10",
                "outputs": [{"url": f"file://{self.media}/out/bench.mp4", "preset": "h264-480p"}],
                "intent": "bench"}


_LIVE: set[Master] = set()


@atexit.register
def _stop_live_masters() -> None:
    for master in list(_LIVE):
        master.stop()


@contextlib.contextmanager
def running_master(workdir: Path, name: str, spy_dir: Path | None = None) -> Iterator[Master]:
    """A started master, stopped on the way out; its stacks sampled with py-spy if asked."""
    master = Master(workdir, name)
    master.start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        if spy_dir is not None:
            spy = start_py_spy(master.pid, spy_dir / f"{name}.txt")
        yield master
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        master.stop()


def start_py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample every master process without pausing it; collapsed stacks for flame graphs.

    Profiling only: the sampler needs CPU of its own, so figures of a sampled run are low.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                             "--rate", "200", "--format", "raw", "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- agent and operator calls ---


@dataclasses.dataclass(frozen=True)
class Node:
    id: str
    credential: str


def register_nodes(master: Master, count: int, *, prefix: str, slots: int = 1,
                   threads: int = 8) -> tuple[list[Node], float]:
    """Register ``count`` nodes concurrently; return them and the registrations per second."""
    local = threading.local()

    def one(index: int) -> Node:
        if not hasattr(local, "session"):
            local.session = master.session(master.enroll_token)
        body = {"name": f"{prefix}-{index:05d}", "slots": slots, "encoders": ["libx264", "aac"],
                "hwaccels": [], "agent_version": "bench"}
        reply = local.session.post(master.url + "/api/v1/nodes/register", json=body,
                                   timeout=REQUEST_TIMEOUT_S)
        _expect(reply, 201)
        data = reply.json()
        return Node(data["node_id"], data["credential"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(threads, count))) as pool:
        nodes = list(pool.map(one, range(count)))
    return nodes, count / (time.perf_counter() - started)


def submit(session: requests.Session, master: Master) -> str:
    reply = session.post(master.url + "/api/v1/jobs", json=master.spec(), timeout=REQUEST_TIMEOUT_S)
    _expect(reply, 201)
    return reply.json()["job"]["id"]


def finish(session: requests.Session, master: Master, assignment: dict[str, Any],
           timings: dict[str, list[float]] | None = None) -> None:
    """Confirm the start and report success: the agent's side of a no-op job."""
    token = {"attempt_token": assignment["attempt_token"]}
    base = f"{master.url}/api/v1/jobs/{assignment['job_id']}"
    for op, body in (("start", token), ("result", {**token, "outcome": "succeeded", "exit_code": 0})):
        sent = time.perf_counter()
        reply = session.post(f"{base}/{op}", json=body, timeout=REQUEST_TIMEOUT_S)
        if timings is not None:
            timings[op].append(time.perf_counter() - sent)
        _expect(reply, 200)


def _expect(reply: requests.Response, status: int) -> None:
    if reply.status_code != status:
        raise BenchError(f"{reply.request.method} {reply.url}: {reply.status_code} {reply.text[:300]}")


class Workers:
    """Threads that record their first exception, so a failing agent fails the run loudly."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:  # reported by check()
                self.errors.append(exc)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def check(self) -> None:
        if self.errors:
            raise BenchError(f"a client thread failed: {self.errors[0]!r}") from self.errors[0]


# --- scenario 1: claim long-poll latency ---


def bench_claim_latency(master: Master, profile: Profile, workers: Workers) -> dict[str, Any]:
    """Idle agents long-poll; one job at a time goes in; measure submit-acknowledged → claimed.

    The agents' last long-polls end only when the master stops, so the caller owns
    ``workers`` and joins them after that.
    """
    nodes, _ = register_nodes(master, profile.latency_agents, prefix="lp",
                              threads=profile.register_threads)
    claimed: queue.Queue[tuple[str, float]] = queue.Queue()
    idle: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def agent(node: Node) -> None:
        session = master.session(node.credential)
        url = f"{master.url}/api/v1/nodes/{node.id}/claim"
        body = {"slots": 1, "wait_s": profile.latency_wait_s}
        while not stop.is_set():
            try:
                reply = session.post(url, json=body, timeout=profile.latency_wait_s + REQUEST_TIMEOUT_S)
            except requests.ConnectionError:
                if stop.is_set():
                    return
                raise
            received = time.perf_counter()
            if stop.is_set() and reply.status_code != 200:
                return
            _expect(reply, 200)
            for assignment in reply.json()["assignments"]:
                claimed.put((assignment["job_id"], received))
                finish(session, master, assignment)
                idle.put(assignment["job_id"])

    for node in nodes:
        workers.spawn(agent, node)
    ops = master.session()
    rng = random.Random(2)
    wait_for(lambda: master.claims_waiting() == profile.latency_agents, 10.0, "every agent waiting")
    with CpuMeter(master.pid) as idle_cpu:
        time.sleep(profile.idle_window_s)
    latencies: list[float] = []
    early = 0
    try:
        for _ in range(profile.latency_jobs):
            time.sleep(rng.uniform(*profile.latency_gap_s))
            job_id = submit(ops, master)
            acknowledged = time.perf_counter()
            got, received = claimed.get(timeout=REQUEST_TIMEOUT_S)
            if got != job_id:
                raise BenchError(f"claimed {got}, expected {job_id}")
            if received < acknowledged:  # the claim answer overtook the submit answer
                early += 1
            latencies.append(max(0.0, received - acknowledged))
            if idle.get(timeout=REQUEST_TIMEOUT_S) != job_id:
                raise BenchError("jobs finished out of order")
            workers.check()
    except queue.Empty:
        workers.check()
        raise BenchError("a submitted job was not claimed within 30 s") from None
    finally:
        stop.set()
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
            _expect(session.get(master.url + "/health", timeout=REQUEST_TIMEOUT_S), 200)
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


def bench_dispatch_round(master: Master, profile: Profile, agents: int) -> dict[str, Any]:
    """Pre-submit N jobs, then K agents claim → start → result until the queue is empty."""
    nodes, _ = register_nodes(master, agents, prefix=f"tp{agents}", threads=agents)
    ops_local = threading.local()
    per_thread = [profile.dispatch_jobs // agents + (i < profile.dispatch_jobs % agents)
                  for i in range(agents)]

    def submit_some(count: int) -> list[str]:
        if not hasattr(ops_local, "session"):
            ops_local.session = master.session()
        return [submit(ops_local.session, master) for _ in range(count)]

    with CpuMeter(master.pid) as submit_cpu, ThreadPoolExecutor(agents) as pool:
        submitted = {job for part in pool.map(submit_some, per_thread) for job in part}
    done: list[list[str]] = [[] for _ in range(agents)]
    timings: list[dict[str, list[float]]] = [{"claim": [], "start": [], "result": []}
                                             for _ in range(agents)]
    barrier = threading.Barrier(agents + 1)
    workers = Workers()

    def agent(index: int, node: Node) -> None:
        session = master.session(node.credential)
        url = f"{master.url}/api/v1/nodes/{node.id}/claim"
        barrier.wait()
        while True:
            sent = time.perf_counter()
            reply = session.post(url, json={"slots": 1, "wait_s": 0}, timeout=REQUEST_TIMEOUT_S)
            timings[index]["claim"].append(time.perf_counter() - sent)
            _expect(reply, 200)
            assignments = reply.json()["assignments"]
            if not assignments:
                return
            for assignment in assignments:
                finish(session, master, assignment, timings[index])
                done[index].append(assignment["job_id"])

    for index, node in enumerate(nodes):
        workers.spawn(agent, index, node)
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
        "agents": agents, "jobs": len(finished),
        "submit": {"threads": agents, "jobs_per_s": round(len(submitted) / submit_cpu.result["wall_s"], 1),
                   "cpu": submit_cpu.result, "per_job": cpu_per_op(submit_cpu.result, len(submitted))},
        "wall_s": wall, "jobs_per_s": round(len(finished) / wall, 1),
        "agent_requests": requests_made, "requests_per_s": round(requests_made / wall, 1),
        "end_to_end_jobs_per_s": round(len(finished) / (wall + submit_cpu.result["wall_s"]), 1),
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


def bench_heartbeat(master: Master, profile: Profile) -> dict[str, Any]:
    """Open-loop heartbeats at a fixed rate, each node every ``nodes / rate`` seconds.

    Each heartbeat has a scheduled time; a thread that falls behind sends at once, and the
    lag is reported, so a slow server cannot hide by slowing the client down.
    """
    nodes, register_rate = register_nodes(master, profile.heartbeat_nodes, prefix="hb",
                                          threads=profile.register_threads)
    total = int(profile.heartbeat_rate * profile.heartbeat_window_s)
    threads = profile.heartbeat_threads
    latency: list[list[float]] = [[] for _ in range(threads)]
    lag: list[list[float]] = [[] for _ in range(threads)]
    statuses: list[dict[int, int]] = [{} for _ in range(threads)]
    body = {"running": [], "free_slots": 1}
    workers = Workers()
    epoch = [0.0]
    ready = threading.Barrier(threads + 1)

    def client(index: int) -> None:
        session = master.session(auth=False)
        ready.wait()
        for k in range(index, total, threads):
            due = epoch[0] + k / profile.heartbeat_rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            node = nodes[k % len(nodes)]
            sent = time.perf_counter()
            reply = session.post(f"{master.url}/api/v1/nodes/{node.id}/heartbeat", json=body,
                                 headers={"Authorization": f"Bearer {node.credential}"},
                                 timeout=REQUEST_TIMEOUT_S)
            received = time.perf_counter()
            statuses[index][reply.status_code] = statuses[index].get(reply.status_code, 0) + 1
            latency[index].append(received - sent)
            lag[index].append(max(0.0, sent - due))

    for index in range(threads):
        workers.spawn(client, index)
    with CpuMeter(master.pid) as cpu:
        epoch[0] = time.perf_counter() + 0.05
        ready.wait()
        workers.join(profile.heartbeat_window_s + profile.deadline_s / 4)
    workers.check()
    counts: dict[str, int] = {}
    for part in statuses:
        for status, n in part.items():
            counts[str(status)] = counts.get(str(status), 0) + n
    sent_total = sum(len(part) for part in latency)
    return {
        "nodes": profile.heartbeat_nodes, "register_per_s": round(register_rate, 1),
        "target_rate_per_s": profile.heartbeat_rate,
        "interval_s": round(profile.heartbeat_nodes / profile.heartbeat_rate, 2),
        "window_s": profile.heartbeat_window_s, "client_threads": threads,
        "heartbeats": sent_total, "achieved_rate_per_s": round(sent_total / cpu.result["wall_s"], 1),
        "statuses": counts,
        "latency": summarize([x for part in latency for x in part]),
        "schedule_lag": summarize([x for part in lag for x in part]),
        "cpu": cpu.result, "per_heartbeat": cpu_per_op(cpu.result, sent_total),
    }


# --- the machine ---


def probe_storage(directory: Path, commits: int = 300) -> dict[str, float]:
    """fsync cost and SQLite WAL commit rates where the database lives: the store's ceiling."""
    probe: dict[str, float] = {}
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(100):
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        probe["fsync_ms"] = round((time.perf_counter() - started) * 10, 3)
    finally:
        os.close(fd)
        path.unlink()
    for mode in ("FULL", "NORMAL"):
        db = directory / f"probe-{mode}.db"
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {mode}")
            conn.execute("CREATE TABLE t (v INTEGER)")
            started = time.perf_counter()
            for i in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (i,))
                conn.execute("COMMIT")
            probe[f"sqlite_wal_{mode.lower()}_commits_per_s"] = round(
                commits / (time.perf_counter() - started))
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    return probe


def machine(directory: Path, commits: int) -> dict[str, Any]:
    """What the figures depend on: CPUs, storage, and how busy the machine already was."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "client_shares_cpus_with_server": True,
            "load_avg_1m_before": round(os.getloadavg()[0], 2), **probe_storage(directory, commits)}


# --- the run ---


def master_defaults() -> dict[str, Any]:
    """The settings every scenario's master runs with: the defaults, read from the settings table."""
    from ffrtmp.config import BY_NAME

    names = ("workers", "threads", "lease", "claim_wait_max", "heartbeat_interval", "node_timeout")
    return {"worker_class": "gthread", "database": "sqlite (WAL)",
            **{name: BY_NAME[name].default for name in names}}


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    measured: dict[str, float] = {}
    if "claim_latency" in result:
        measured["claim_latency_p50_ms"] = result["claim_latency"]["latency"]["p50_ms"]
        measured["claim_latency_p99_ms"] = result["claim_latency"]["latency"]["p99_ms"]
    if "dispatch" in result:
        measured["dispatch_jobs_per_s"] = max(r["jobs_per_s"] for r in result["dispatch"])
    if "heartbeat" in result:
        measured["heartbeat_p99_ms"] = result["heartbeat"]["latency"]["p99_ms"]
    verdict = {}
    for key, value in measured.items():
        op, target = GOALS[key]
        met = value <= target if op == "<=" else value >= target
        verdict[key] = {"goal": f"{op} {target:g}", "measured": value, "met": met}
    return verdict


SCENARIOS = ("latency", "dispatch", "heartbeat")


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: Callable[[str], None] = print,
        workdir: Path | None = None, spy_dir: Path | None = None) -> dict[str, Any]:
    """Run the chosen scenarios, each against its own fresh master; return the result dict."""
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="ffrtmp-bench-")) if workdir is None else workdir
    started = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "master", "profile": dataclasses.asdict(profile),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "master": master_defaults(),
    }
    try:
        log("probing storage …")
        result["machine"] = machine(base, profile.probe_commits)
        if "latency" in scenarios:
            log(f"claim latency: {profile.latency_agents} long-polling agents, "
                f"{profile.latency_jobs} jobs one at a time …")
            agents = Workers()
            with running_master(base, "latency", spy_dir) as master:
                result["claim_latency"] = bench_claim_latency(master, profile, agents)
            agents.join(REQUEST_TIMEOUT_S)  # their long-polls ended with the master
        _check_deadline(started, profile)
        if "dispatch" in scenarios:
            log(f"dispatch: {profile.dispatch_jobs} no-op jobs per round, agents {profile.dispatch_agents} …")
            with running_master(base, "dispatch", spy_dir) as master:
                result["dispatch"] = bench_dispatch(master, profile)
        _check_deadline(started, profile)
        if "heartbeat" in scenarios:
            log(f"heartbeats: {profile.heartbeat_nodes} nodes at {profile.heartbeat_rate:g}/s "
                f"for {profile.heartbeat_window_s:g} s …")
            with running_master(base, "heartbeat", spy_dir) as master:
                result["heartbeat"] = bench_heartbeat(master, profile)
    finally:
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    result["machine"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    result["goals"] = goals(result)
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def _check_deadline(started: float, profile: Profile) -> None:
    if time.monotonic() - started > profile.deadline_s:
        raise BenchError(f"the run exceeded its {profile.deadline_s:g} s bound")


def render(result: dict[str, Any]) -> str:
    """The human table: one line per figure, goals marked met or missed."""
    m = result["machine"]
    lines = [f"ffrtmp master benchmark ({result['profile']['name']}) — {m['cpus']} CPUs, "
             f"Python {m['python']}, SQLite {m['sqlite']}",
             f"storage: fsync {m['fsync_ms']} ms; WAL commits/s synchronous=FULL "
             f"{m['sqlite_wal_full_commits_per_s']}, NORMAL {m['sqlite_wal_normal_commits_per_s']}",
             "the load generator runs on the same CPUs as the master; CPU columns show the split",
             f"load average (1 min) before {m['load_avg_1m_before']}, after {m['load_avg_1m_after']}"
             + (" — other work was running; figures are pessimistic"
                if m["load_avg_1m_before"] > 0.5 * (m["cpus"] or 1) else ""),
             ""]
    row = "{:<44} {:>12} {:>12} {:>12}"
    lines.append(row.format("figure", "p50/value", "p99", "max"))
    if "claim_latency" in result:
        c = result["claim_latency"]
        lat = c["latency"]
        lines.append(row.format(f"claim latency, {c['agents']} idle agents (ms)",
                                lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
        lines.append(row.format(f"  idle long-poll: server cores used ({c['agents']} agents)",
                                c["idle"]["server_cores_used"], "", ""))
    for r in result.get("dispatch", []):
        k = r["agents"]
        lines.append(row.format(f"submit, {k} threads (jobs/s)", r["submit"]["jobs_per_s"], "", ""))
        lines.append(row.format(f"dispatch, {k} agents (jobs/s)", r["jobs_per_s"], "", ""))
        lines.append(row.format("  agent requests/s vs /health requests/s",
                                r["requests_per_s"], r["health"]["requests_per_s"],
                                f"{r['vs_health']:.0%}"))
        for op in ("claim", "start", "result"):
            lat = r["latency"][op]
            lines.append(row.format(f"  {op} latency (ms)", lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
        lines.append(row.format("  cores used: server / client", r["cpu"]["server_cores_used"],
                                r["cpu"]["client_cores_used"], ""))
        per = r["per_job"]
        lines.append(row.format("  CPU ms per job: server / client", per["server_cpu_ms"],
                                per["client_cpu_ms"], ""))
        lines.append(row.format("  jobs/s if CPU-bound: shared / server-only", per["cpu_bound_per_s"],
                                per["server_only_per_s"], ""))
        health = r["health"]["per_request"]
        lines.append(row.format("  /health CPU ms per request: server / client", health["server_cpu_ms"],
                                health["client_cpu_ms"], ""))
    if "heartbeat" in result:
        h = result["heartbeat"]
        lat, lag = h["latency"], h["schedule_lag"]
        lines.append(row.format(f"heartbeat, {h['nodes']} nodes @ {h['achieved_rate_per_s']}/s (ms)",
                                lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
        lines.append(row.format("  client schedule lag (ms)", lag["p50_ms"], lag["p99_ms"], lag["max_ms"]))
        lines.append(row.format("  cores used: server / client", h["cpu"]["server_cores_used"],
                                h["cpu"]["client_cores_used"], ""))
        lines.append(row.format("  CPU ms per heartbeat: server / client",
                                h["per_heartbeat"]["server_cpu_ms"], h["per_heartbeat"]["client_cpu_ms"], ""))
        lines.append(row.format("  registrations/s", h["register_per_s"], "", ""))
        if set(h["statuses"]) != {"200"}:
            lines.append(f"  heartbeat answers by status: {h['statuses']}")
    lines.append("")
    for key, g in result["goals"].items():
        lines.append(f"goal {key} {g['goal']}: measured {g['measured']} — {'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"master-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the master


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (under a minute)")
    parser.add_argument("--only", choices=SCENARIOS, action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", dest="spy_dir",
                        help="sample the master with py-spy into DIR/<scenario>.txt (lowers the figures)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    profile = QUICK if args.quick else FULL
    try:
        result = run(profile, scenarios=args.only or SCENARIOS, spy_dir=args.spy_dir,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    path = write_result(result, args.out)  # first, so a closed stdout cannot lose it
    try:
        print(render(result))
        print(json.dumps(result, indent=2), flush=True)
    except BrokenPipeError:
        sys.stdout = None  # type: ignore[assignment]  # quiet the interpreter's final flush
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
