"""The master under test and the client calls the master benchmark makes, with their CPU cost.

``Master`` is a real ``ffrtmp master`` (started and stopped by ``tests/processes.py``, as the
tests do) with random tokens, plus the client sessions the benchmark opened against it:
they are closed before it stops, since an idle kept-alive connection holds a stopping
worker for 2 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests
from tests.processes import MasterProcess, master_files_env, start_master, stop_process

from bench.harness import LIVE, REQUEST_TIMEOUT_S, BenchError

# --- CPU accounting ---


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


class Master:
    """A real ``ffrtmp master`` with its files under ``workdir/name``; stopped on exit."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.operator_token = secrets.token_urlsafe(24)
        self.enroll_token = secrets.token_urlsafe(24)
        self.env = master_files_env(self.dir, self.operator_token, self.enroll_token)
        self.media = Path(self.env["FFRTMP_MEDIA_ROOTS"])
        (self.media / "out").mkdir(parents=True)
        self.url = "http://" + self.env["FFRTMP_MASTER_BIND"]
        self.metrics_url = "http://" + self.env["FFRTMP_METRICS_BIND"]
        self.process: MasterProcess | None = None
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def start(self, timeout_s: float = 30.0) -> None:
        try:
            self.process = start_master(self.dir, self.env, timeout=timeout_s)
        except AssertionError as exc:  # it was stopped; say why the run cannot go on
            raise BenchError(str(exc)[-4000:]) from None
        LIVE.add(self.process.proc)

    def stop(self) -> None:
        """SIGTERM the process group (long-polls end at once), escalating after a bound."""
        process, self.process = self.process, None
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:  # an idle kept-alive connection would hold a stopping worker 2 s
            session.close()
        if process is not None:
            stop_process(process.proc)
            LIVE.discard(process.proc)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.proc.pid

    def claims_waiting(self) -> float:
        """Long-polling claims right now, summed over the workers (``ffrtmp_claims_waiting``)."""
        text = requests.get(self.metrics_url + "/metrics", timeout=REQUEST_TIMEOUT_S).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("ffrtmp_claims_waiting"))

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
        expect(reply, 201)
        data = reply.json()
        return Node(data["node_id"], data["credential"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(threads, count))) as pool:
        nodes = list(pool.map(one, range(count)))
    return nodes, count / (time.perf_counter() - started)


def submit(session: requests.Session, master: Master) -> str:
    reply = session.post(master.url + "/api/v1/jobs", json=master.spec(), timeout=REQUEST_TIMEOUT_S)
    expect(reply, 201)
    return reply.json()["job"]["id"]


def submit_many(session: requests.Session, master: Master, count: int) -> list[str]:
    """``count`` jobs in one ``POST /jobs/batch``; every one must be queued (201)."""
    reply = session.post(master.url + "/api/v1/jobs/batch", json={"jobs": [master.spec()] * count},
                         timeout=REQUEST_TIMEOUT_S)
    expect(reply, 200)
    entries = reply.json()["jobs"]
    if len(entries) != count or any(entry.get("status") != 201 for entry in entries):
        raise BenchError(f"a batch submit was not queued whole: {reply.text[:300]}")
    return [entry["job"]["id"] for entry in entries]


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
        expect(reply, 200)


def expect(reply: requests.Response, status: int) -> None:
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

