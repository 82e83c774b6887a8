"""The dispatch benchmark's baseline: Celery 5 on a Redis broker and result backend.

Each round starts its own ``redis-server`` on a free loopback port in a temporary directory
(at Redis's defaults, or with ``appendonly yes`` and ``appendfsync always``) and a Celery
worker process running the no-op task of ``bench/celery_noop.py``, and stops both after.
Producers are threads calling ``task.delay()`` once per job; the run ends when every result
has been fetched. Needs the ``bench`` extra and ``redis-server`` (``tools/bootstrap.sh --bench``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.processes import clean_env, free_port

from bench.harness import LIVE, BenchError, stop
from bench.master_client import CpuMeter, Workers

ROOT = Path(__file__).resolve().parents[1]
FSYNC_ARGS = ("--appendonly", "yes", "--appendfsync", "always")
DURABILITY = {
    "default": "Redis defaults: no fsync per write (RDB snapshots by its save rules, AOF off); "
               "an acknowledged delay() or result can be lost on a crash",
    "fsync": "Redis appendonly yes + appendfsync always: the AOF is fsync'd before the replies "
             "of each event-loop pass, so every acknowledged write is on disk",
}


def missing() -> str | None:
    """Why the baseline cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (tools/bootstrap.sh --bench installs it)"
    for module in ("celery", "redis"):
        if importlib.util.find_spec(module) is None:
            return (f"the Python package {module} is missing"
                    " (tools/bootstrap.sh --bench installs the bench extra)")
    return None


def versions() -> dict[str, str]:
    import celery  # type: ignore[import-untyped]

    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=30,
                         check=False)
    return {"celery": str(celery.__version__), "redis_server": out.stdout.split(" v=")[-1].split()[0]}


@contextlib.contextmanager
def running_redis(directory: Path, fsync: bool) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``redis-server`` of its own on a free port; its URL once it answers PING."""
    import redis

    directory.mkdir(parents=True)
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--logfile", str(directory / "redis.log"), "--daemonize", "no", *(FSYNC_ARGS if fsync else ())]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    LIVE.add(proc)
    try:
        client = redis.Redis(port=port, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"redis-server did not answer on port {port}: "
                                 f"{(directory / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}", proc
    finally:
        stop(proc, timeout=10)


def redis_persistence(url: str) -> dict[str, str]:
    """What the running Redis says about its durability (the report quotes it, not the flags)."""
    import redis

    client = redis.Redis.from_url(url + "/0")
    try:
        config = client.config_get("appendonly")
        config.update(client.config_get("appendfsync"))
        config.update(client.config_get("save"))
        return {str(k): str(v) for k, v in config.items()}
    finally:
        client.close()


@contextlib.contextmanager
def running_worker(url: str, pool: tuple[str, ...], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker process on that Redis; gossip, mingle and heartbeats off (no use here)."""
    env = {**clean_env(), "BENCH_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "celery", "-A", "bench.celery_noop", "worker", "--loglevel=warning",
            "--without-gossip", "--without-mingle", "--without-heartbeat", *pool]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    LIVE.add(proc)
    try:
        yield proc
    finally:
        stop(proc, timeout=20)


def produce(app: Any, jobs: int, producers: int, timeout_s: float) -> tuple[float, list[int]]:
    """``delay()`` from ``producers`` threads, then each fetches its results; wall and the values."""
    from bench.celery_noop import TASK

    task = app.tasks[TASK]
    values: list[list[int]] = [[] for _ in range(producers)]
    go = threading.Barrier(producers + 1)
    ended = [0.0] * producers

    def producer(index: int) -> None:
        go.wait()
        pending = [task.delay(k) for k in range(index, jobs, producers)]
        values[index] = [int(r.get(timeout=timeout_s)) for r in pending]
        ended[index] = time.perf_counter()

    workers = Workers()
    for index in range(producers):
        workers.spawn(producer, index)
    go.wait()
    started = time.perf_counter()
    workers.join(timeout_s + 30)
    workers.check()
    if not all(ended):
        raise BenchError("celery: a producer did not finish in time")
    return max(ended) - started, [v for part in values for v in part]


def measure_celery(base: Path, profile: Any, kind: str, number: int) -> dict[str, Any]:
    """One round of one Celery variant: fresh Redis and worker, warm-up, the measured run."""
    from bench.celery_noop import make_app

    directory = base / f"celery-{kind}-{number}"
    with running_redis(directory / "redis", kind == "fsync") as (url, redis_proc), \
            running_worker(url, profile.celery_pool, directory / "worker.log") as worker:
        app = make_app(url)
        try:
            wait_worker(app, worker, directory / "worker.log", profile.round_timeout_s)
            if profile.warmup:
                produce(app, profile.warmup, profile.submitters, profile.round_timeout_s)
            with CpuMeter(worker.pid) as worker_cpu, CpuMeter(redis_proc.pid) as redis_cpu:
                wall, values = produce(app, profile.jobs, profile.submitters, profile.round_timeout_s)
            persistence = redis_persistence(url)
        finally:
            app.close()
    if sorted(values) != list(range(profile.jobs)):
        raise BenchError(f"celery {kind}: {len(values)} results for {profile.jobs} jobs")
    return {"jobs": profile.jobs, "wall_s": round(wall, 3), "jobs_per_s": round(profile.jobs / wall, 1),
            "redis_config": persistence, "durability": DURABILITY[kind],
            "cpu": {"worker": worker_cpu.result, "redis": redis_cpu.result}}


def wait_worker(app: Any, worker: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """The worker is up once it has run a task; fail with its log if it died."""
    from bench.celery_noop import TASK

    result = app.tasks[TASK].delay(-1)
    deadline = time.monotonic() + timeout_s
    while not result.ready():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the Celery worker did not start: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    result.get(timeout=5)
