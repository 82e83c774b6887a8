"""The farm the worker benchmark measures: a real master and one agent, and what its jobs cost.

Every setting is at its default but the paths, the ports and the slots, as in the demo. The
master is the master benchmark's (``bench/master_client.py``), the agent is started as the
tests start it (``tests/processes.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from tests.processes import AgentProcess, agent_env, kill_workloads, start_agent

from bench.harness import LIVE, REQUEST_TIMEOUT_S, STATE_DIRS, BenchError, median, stop
from bench.master_client import Master
from ffrtmp.agent.outputs import staging_path
from ffrtmp.contract import AT_REST
from ffrtmp.isotime import parse_iso


class Farm:
    """A real master and one agent on loopback, every setting at its default but paths and slots."""

    def __init__(self, base: Path, slots: int) -> None:
        self.master = Master(base, "farm")
        self.dir, self.media = self.master.dir, self.master.media
        self.state = self.dir / "worker"
        self.slots = slots
        self.agent: AgentProcess | None = None
        self.session = self.master.session()

    def start(self, timeout_s: float) -> float:
        """Start both and wait for their /ready; return the agent's time to ready."""
        STATE_DIRS.add(self.state)
        self.master.start(timeout_s)
        assert self.master.process is not None
        env = agent_env(self.dir, self.master.process, "worker", FFRTMP_SLOTS=str(self.slots),
                        FFRTMP_NODE_NAME="bench-worker")
        started = time.monotonic()
        try:
            self.agent = start_agent(self.dir, self.master.process, "agent", env=env, timeout=timeout_s)
        except AssertionError as exc:  # it was stopped; say why the run cannot go on
            raise BenchError(str(exc)[-3000:]) from None
        LIVE.add(self.agent.proc)
        return time.monotonic() - started

    def stop(self) -> None:
        """Agent first (it stops claiming), then the master, whose exit ends any long-poll."""
        for daemon in (self.agent, self.master.process):
            if daemon is not None and daemon.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.proc.pid, signal.SIGTERM)
        if self.agent is not None:
            stop(self.agent.proc)
        self.master.stop()
        kill_workloads(self.state)

    @property
    def agent_pid(self) -> int:
        assert self.agent is not None
        return self.agent.proc.pid

    def submit(self, spec: dict[str, Any]) -> str:
        reply = self.session.post(self.master.url + "/api/v1/jobs", json=spec, timeout=REQUEST_TIMEOUT_S)
        if reply.status_code != 201:
            raise BenchError(f"submit: {reply.status_code} {reply.text[:300]}")
        return str(reply.json()["job"]["id"])

    def finished(self) -> dict[str, dict[str, Any]]:
        reply = self.session.get(self.master.url + "/api/v1/jobs", timeout=REQUEST_TIMEOUT_S,
                                 params={"state": ",".join(sorted(AT_REST)), "limit": 500})
        reply.raise_for_status()
        return {job["id"]: job for job in reply.json()["jobs"]}

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.session.get(f"{self.master.url}/api/v1/jobs/{job_id}", timeout=REQUEST_TIMEOUT_S)
        reply.raise_for_status()
        return dict(reply.json()["job"])


@contextlib.contextmanager
def running_farm(base: Path, slots: int, ready_timeout_s: float) -> Iterator[tuple[Farm, float]]:
    farm = Farm(base, slots)
    try:
        ready_s = farm.start(ready_timeout_s)
        yield farm, ready_s
    finally:
        farm.stop()


def process_cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def parse_ts(text: str | None) -> float | None:
    return parse_iso(text).timestamp() if text else None


class CpuSplit:
    """CPU seconds of the master (arbiter and workers), the agent itself, and its jobs.

    Jobs are wrappers plus workloads: a wrapper reaps its ffmpeg, so a wrapper's children time
    is its workload's. Wrappers the agent reaped count in its children time; wrappers it has
    not reaped yet (exited, still zombies) are read one by one.
    """

    def __init__(self, master_pid: int, agent_pid: int) -> None:
        self.master = psutil.Process(master_pid)
        self.agent = psutil.Process(agent_pid)

    def sample(self) -> dict[str, float]:
        master = 0.0
        for proc in (self.master, *self.master.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                master += process_cpu_s(proc)
        times = self.agent.cpu_times()
        jobs = times.children_user + times.children_system
        zombies = 0
        for child in self.agent.children():
            with contextlib.suppress(psutil.Error):
                t = child.cpu_times()
                jobs += t.user + t.system + t.children_user + t.children_system
                zombies += child.status() == psutil.STATUS_ZOMBIE
        return {"master_cpu_s": master, "agent_cpu_s": times.user + times.system,
                "jobs_cpu_s": jobs, "bench_cpu_s": time.process_time(), "agent_zombies": zombies}

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: round(after[k] - before[k], 2) for k in before}


def wait_finished(farm: Farm, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Poll the master until every job is at rest; fail if the agent dies or time runs out."""
    assert farm.agent is not None
    deadline = time.monotonic() + timeout_s
    while True:
        done = {k: v for k, v in farm.finished().items() if k in set(ids)}
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            raise BenchError(f"farm: {len(done)} of {len(ids)} jobs finished within {timeout_s:.0f} s")
        if (status := farm.agent.proc.poll()) is not None:
            raise BenchError(f"agent exited with {status}:\n{farm.agent.output()[-3000:]}")
        time.sleep(0.5)


def run_farm(farm: Farm, specs: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    """Submit every spec, wait for every job to finish; wall = first submit → last finished_at."""
    split = CpuSplit(farm.master.pid, farm.agent_pid)
    cpu0 = split.sample()
    first_submit = time.time()
    ids = [farm.submit(spec) for spec in specs]
    submitted = time.time() - first_submit
    done = wait_finished(farm, ids, timeout_s)
    cpu = CpuSplit.delta(cpu0, split.sample())
    bad = [j for j in done.values() if j["state"] != "succeeded"]
    if bad:
        raise BenchError(f"farm: {len(bad)} job(s) did not succeed, e.g. {bad[0]['id']} {bad[0]['state']}")
    last = max(parse_ts(j["finished_at"]) or 0.0 for j in done.values())
    wall = last - first_submit
    details = [farm.job(job_id) for job_id in ids]
    return {"ids": ids, "wall_s": round(wall, 3), "jobs_per_s": round(len(ids) / wall, 4),
            "submit_s": round(submitted, 3), "cpu": cpu,
            "agent_rss_mb_after": round(psutil.Process(farm.agent_pid).memory_info().rss / 2**20, 1),
            "timing": job_timing(details, wall, farm.slots)}


def job_timing(jobs: list[dict[str, Any]], wall_s: float, slots: int) -> dict[str, Any]:
    """Where a slot's time goes between one encode and the next, from master and wrapper clocks.

    confirm: master assigned → master saw start (agent writes the assignment, calls start);
    spawn: master saw start → wrapper starts ffmpeg (agent launches the wrapper, Python starts);
    report: ffmpeg ended → master finished the job (the agent notices, delivers the result);
    reclaim: a slot's ffmpeg ended → the master assigned that slot its next job.
    """
    confirm, spawn, report, runtime, assigned, ended = [], [], [], [], [], []
    for job in jobs:
        attempt = job["attempts"][-1]
        result = attempt["result"] or {}
        a_assigned, a_started = parse_ts(attempt["assigned_at"]), parse_ts(attempt["started_at"])
        w_started, w_ended = parse_ts(result.get("started_at")), parse_ts(result.get("ended_at"))
        finished = parse_ts(job["finished_at"])
        if None in (a_assigned, a_started, w_started, w_ended, finished):
            continue
        assert a_assigned and a_started and w_started and w_ended and finished
        confirm.append(a_started - a_assigned)
        spawn.append(w_started - a_started)
        report.append(finished - w_ended)
        runtime.append(float(result["runtime_s"]))
        assigned.append(a_assigned)
        ended.append(w_ended)
    assigned.sort()
    ended.sort()
    reclaim = [assigned[k + slots] - ended[k] for k in range(len(ended)) if k + slots < len(assigned)]

    def ms(values: list[float]) -> dict[str, float]:
        return {"median_ms": round(median(values) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1) if values else 0.0}

    busy = sum(runtime)
    return {"confirm": ms(confirm), "spawn": ms(spawn), "report": ms(report), "reclaim": ms(reclaim),
            "ffmpeg_runtime_mean_s": round(statistics.mean(runtime), 3) if runtime else 0.0,
            "slot_utilisation": round(busy / (slots * wall_s), 4) if wall_s else 0.0,
            "argv_identical": None}


def same_work(farm: Farm, ids: list[str], argvs: list[list[str]]) -> bool:
    """Did the wrapper run exactly the baseline's argv (but for the -progress path and the
    staging names the farm writes its outputs to until they succeed)?"""
    def normalised(argv: list[str]) -> list[str]:
        out = list(argv)
        out[out.index("-progress") + 1] = "PROGRESS"
        return out

    for job_id, argv in zip(ids, argvs, strict=True):
        state_files = list((farm.state / "jobs").glob(f"{job_id}.*/wrapper.json"))
        if len(state_files) != 1:
            return False
        stage = state_files[0].parent.name
        staged = {staging_path(word, stage): word for word in argv}
        ran = [staged.get(word, word) for word in json.loads(state_files[0].read_text())["argv"]]
        if normalised(ran) != normalised(argv):
            return False
    return True

