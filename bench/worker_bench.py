"""Worker benchmark: wrapper overhead, farm efficiency against ``xargs -P2``, idle agent cost.

Every figure is a ratio against a baseline measured in the same run, interleaved with it so
both share the machine's noise:

1. wrapper overhead: ``ffrtmp wrapper run … -- ffmpeg ARGV`` against bare ``ffmpeg ARGV``
   (the same argv, ``-progress`` included), in alternating pairs;
2. farm efficiency: N short transcodes through a real master and one agent with two slots
   against the same N command lines (``build_argv`` on the same specs) run by ``xargs -P2``,
   each in a session of its own as the wrapper starts it (see ``run_xargs``);
3. idle agent: RSS and CPU of a registered, ready agent that has nothing to do.

Master and agent are real processes (``python -m ffrtmp master|agent``) on free loopback
ports with their files under a temporary directory, every setting at its default except the
paths, ports and ``FFRTMP_SLOTS=2``, as in the demo. Everything is bounded in time, and
every process the benchmark starts (wrappers and workloads included) is stopped before it
exits. The result is printed as a table and written to ``bench/results/worker-<time>.json``.

    python bench/worker_bench.py            # full run, about 6 minutes on 2 cores
    python bench/worker_bench.py --quick    # small counts, about 40 seconds
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import requests

from ffrtmp import jobspec
from ffrtmp.agent.ffmpeg import build_argv, staging_path
from ffrtmp.wrapper import procinfo
from ffrtmp.wrapper.cmdline import WrapperCall

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REQUEST_TIMEOUT_S = 30.0
FINAL = ("succeeded", "failed", "canceled", "lost")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much work each scenario does; every count and duration is bounded."""

    name: str
    wrapper_pairs: int = 10  # one pair varies by ±5 % even on a quiet machine
    wrapper_encode_s: float = 5.0  # bare ffmpeg wall time the encode is calibrated to
    fixed_cost_runs: int = 5  # wrapper around /bin/true: its fixed cost alone
    farm_jobs: int = 40
    farm_job_s: float = 2.0  # wall time of one job while the other slot is busy
    farm_rounds: int = 2  # xargs then farm, repeated while the deadline allows
    slots: int = 2
    idle_window_s: float = 60.0
    idle_sample_s: float = 1.0
    ready_timeout_s: float = 60.0
    deadline_s: float = 1200.0  # no new phase starts after this


FULL = Profile("full")
QUICK = Profile("quick", wrapper_pairs=1, wrapper_encode_s=1.0, fixed_cost_runs=3, farm_jobs=10,
                farm_rounds=1, idle_window_s=10.0, deadline_s=300.0)

GOALS = {
    "wrapper_overhead_ratio": ("<=", 1.01),
    "farm_throughput_ratio": (">=", 0.95),
    "idle_rss_mb": ("<=", 60.0),
    "idle_cpu_pct": ("<=", 0.5),
}


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (a process died, a job failed)."""


# --- processes ---------------------------------------------------------------------------


_LIVE: set[subprocess.Popen[bytes]] = set()
_STATE_DIRS: set[Path] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 40.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout_s``; then kill what it left behind.

    Workloads run in sessions of their own (``setsid``, the wrapper), out of reach of the
    group signal, so descendants still alive once the process is gone are killed one by one.
    """
    _LIVE.discard(proc)
    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def kill_workloads(state_dir: Path) -> int:
    """End wrappers and workloads found under ``state_dir``: by design they outlive agents."""
    killed = 0
    for state_file in state_dir.glob("**/wrapper.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        for pid_key, ticks_key in (("wrapper_pid", "wrapper_start_ticks"), ("pid", "pid_start_ticks")):
            pid = state.get(pid_key)
            if isinstance(pid, int) and procinfo.alive(pid, state.get(ticks_key)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if pid_key == "pid":
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


@atexit.register
def _stop_everything() -> None:
    for proc in list(_LIVE):
        stop(proc, timeout_s=10)
    for state_dir in list(_STATE_DIRS):
        kill_workloads(state_dir)


def run_bounded(argv: list[str], timeout_s: float, *, stdin: bytes | None = None,
                state_dir: Path | None = None) -> float:
    """Run to success in its own session and return its wall time; killed past the bound."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env=clean_env())
    _LIVE.add(proc)
    try:
        _, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc, timeout_s=5)
        if state_dir is not None:
            kill_workloads(state_dir)
        raise BenchError(f"{Path(argv[0]).name} took over {timeout_s:.0f} s") from None
    except BaseException:  # Ctrl-C or SIGTERM: leave nothing running
        stop(proc, timeout_s=5)
        raise
    finally:
        _LIVE.discard(proc)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        why = err.decode(errors="replace")[-500:]
        raise BenchError(f"{shlex_short(argv)} exited {proc.returncode}: {why}")
    return wall


def shlex_short(argv: Sequence[str]) -> str:
    text = " ".join(argv)
    return text if len(text) < 160 else text[:157] + "…"


def children_cpu_s() -> float:
    """CPU of every child (and grandchild) this process has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def clean_env() -> dict[str, str]:
    """This process's environment without any FFRTMP_* or systemd variable leaking in."""
    drop = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID")
    return {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_") and k not in drop}


# --- job specs and argv ------------------------------------------------------------------


def testsrc_spec(media: Path, name: str, duration_s: float, size: str, rate: int,
                 preset: str) -> dict[str, Any]:
    return {"input": f"testsrc://?duration={jobspec.format_number(duration_s)}&size={size}&rate={rate}",
            "outputs": [{"url": f"file://{media}/out/{name}.mp4", "preset": preset}],
            "intent": "bench"}


def argv_for(spec: dict[str, Any], media: Path, progress: Path) -> list[str]:
    """The argv the agent builds: parsed as the master stores the spec, then ``build_argv``."""
    roots = (str(media),)
    stored = jobspec.parse(spec, roots).to_dict()  # what the master hands the agent
    return build_argv(jobspec.parse(stored, roots), progress_path=str(progress))


def probe_wall_s(make_argv: Callable[[float], list[str]], content_s: float, concurrency: int) -> float:
    """Mean wall time of ``concurrency`` encodes of ``content_s`` seconds of content run at once."""
    procs = []
    started = time.perf_counter()
    for index in range(concurrency):
        argv = make_argv(content_s)
        argv[argv.index("-progress") + 1] += f".{index}"
        argv[-1] = argv[-1].replace(".mp4", f".{index}.mp4")
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        _LIVE.add(procs[-1])
    ended: dict[int, float] = {}
    deadline = started + max(60.0, 20 * content_s)
    try:
        while len(ended) < len(procs) and time.perf_counter() < deadline:
            for index, proc in enumerate(procs):
                if index not in ended and proc.poll() is not None:
                    ended[index] = time.perf_counter() - started
            time.sleep(0.01)
    finally:
        for proc in procs:
            stop(proc, timeout_s=5)
    if len(ended) < len(procs) or any(proc.returncode != 0 for proc in procs):
        raise BenchError(f"calibration encode failed: {shlex_short(make_argv(content_s))}")
    return statistics.mean(ended.values())


def calibrate(make_argv: Callable[[float], list[str]], target_s: float, probe_s: float,
              concurrency: int) -> dict[str, Any]:
    """Pick the content length whose encode takes ``target_s`` wall with ``concurrency`` running.

    FFmpeg's start-up makes a short probe look slow per content second, so the first probe
    only gives a guess; a second probe at the guessed length is scaled to the target.
    """
    def bounded(content_s: float) -> float:
        return round(min(120.0, max(0.2, content_s)), 1)

    first = probe_wall_s(make_argv, probe_s, concurrency)
    guess = bounded(probe_s * target_s / first)
    second = probe_wall_s(make_argv, guess, concurrency)
    return {"target_s": target_s, "concurrency": concurrency,
            "probes": [[probe_s, round(first, 3)], [guess, round(second, 3)]],
            "content_s": bounded(guess * target_s / second)}


# --- scenario 1: wrapper overhead ----------------------------------------------------------


def wrapper_command(job_id: str, state: Path, logs: Path, argv: list[str]) -> list[str]:
    """``ffrtmp wrapper run`` started the way the agent starts it (this interpreter, ``-m``)."""
    return WrapperCall(mode="run", job_id=job_id, state_dir=str(state), log_dir=str(logs),
                       command=tuple(argv)).argv()


def import_time_ms() -> dict[str, float]:
    """Interpreter start-up and the wrapper's imports, from ``-X importtime`` (microseconds in)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "ffrtmp", "wrapper", "run", "--help"],
                         capture_output=True, text=True, timeout=60, check=False, env=clean_env())
    top: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)  # top level: no indent
        if match:
            top[match.group(2).strip()] = int(match.group(1)) / 1000
    site = sum(v for k, v in top.items() if k in ("site", "encodings", "_frozen_importlib_external"))
    ffrtmp = sum(v for k, v in top.items() if k.startswith("ffrtmp"))
    return {"total_ms": round(sum(top.values()), 1), "interpreter_ms": round(site, 1),
            "ffrtmp_ms": round(ffrtmp, 1), "other_ms": round(sum(top.values()) - site - ffrtmp, 1)}


def bench_wrapper(base: Path, profile: Profile, log: Callable[[str], None]) -> dict[str, Any]:
    """Bare ffmpeg and the same argv under the wrapper, alternating which goes first."""
    directory = base / "wrapper"
    media, state, logs = directory / "media", directory / "state", directory / "log"
    (media / "out").mkdir(parents=True)
    _STATE_DIRS.add(state)
    progress = directory / "progress.txt"

    def make_argv(content_s: float) -> list[str]:
        spec = testsrc_spec(media, "wrapper", content_s, "1280x720", 30, "h264-720p")
        return argv_for(spec, media, progress)

    calibration = calibrate(make_argv, profile.wrapper_encode_s,
                            min(2.0, profile.wrapper_encode_s), concurrency=1)
    argv = make_argv(calibration["content_s"])
    bound = max(60.0, 10 * profile.wrapper_encode_s)
    log(f"wrapper: {calibration['content_s']} s of 1280x720 content per encode, "
        f"{profile.wrapper_pairs} pairs …")
    run_bounded(wrapper_command("warm-up", state, logs, ["true"]), 60, state_dir=state)

    bare: list[float] = []
    wrapped: list[float] = []
    cpu: dict[str, list[float]] = {"bare": [], "wrapped": []}
    load_before = os.getloadavg()[0]
    for index in range(profile.wrapper_pairs):
        order = ("bare", "wrapped") if index % 2 == 0 else ("wrapped", "bare")
        for kind in order:
            used = children_cpu_s()
            if kind == "bare":
                bare.append(run_bounded(argv, bound))
            else:
                command = wrapper_command(f"pair-{index}", state, logs, argv)
                wrapped.append(run_bounded(command, bound, state_dir=state))
            cpu[kind].append(children_cpu_s() - used)
    load_after = os.getloadavg()[0]

    fixed: dict[str, list[float]] = {"bare": [], "wrapped": [], "bare_cpu": [], "wrapped_cpu": []}
    for index in range(profile.fixed_cost_runs):
        for kind in ("bare", "wrapped"):
            command = ["true"] if kind == "bare" else wrapper_command(f"true-{index}", state, logs, ["true"])
            used = children_cpu_s()
            fixed[kind].append(run_bounded(command, 60, state_dir=state))
            fixed[f"{kind}_cpu"].append(children_cpu_s() - used)

    ratios = [w / b for b, w in zip(bare, wrapped, strict=True)]
    fixed_ms = (median(fixed["wrapped"]) - median(fixed["bare"])) * 1000
    return {
        "argv": argv, "calibration": calibration,
        "pairs": profile.wrapper_pairs,
        "bare_s": [round(x, 3) for x in bare], "wrapped_s": [round(x, 3) for x in wrapped],
        "bare_median_s": round(median(bare), 3), "wrapped_median_s": round(median(wrapped), 3),
        "ratio": round(median(wrapped) / median(bare), 4),
        "pair_ratios": [round(r, 4) for r in ratios],
        # CPU time hardly depends on what else runs: a cross-check when the wall clock is noisy
        "bare_cpu_median_s": round(median(cpu["bare"]), 3),
        "wrapped_cpu_median_s": round(median(cpu["wrapped"]), 3),
        "cpu_ratio": round(median(cpu["wrapped"]) / median(cpu["bare"]), 4),
        "load_1m": [round(load_before, 2), round(load_after, 2)],
        "fixed_cost": {
            "runs": profile.fixed_cost_runs,
            "wall_ms": round(fixed_ms, 1),
            "cpu_ms": round((median(fixed["wrapped_cpu"]) - median(fixed["bare_cpu"])) * 1000, 1),
            # what the fixed cost alone makes of this encode: steadier than the pairs' ratio
            "ratio": round(1 + fixed_ms / 1000 / median(bare), 4),
        },
        "imports": import_time_ms(),
    }


# --- master and agent ----------------------------------------------------------------------


class Farm:
    """A real master and one agent on loopback, every setting at its default but paths and slots."""

    def __init__(self, base: Path, slots: int) -> None:
        self.dir = base / "farm"
        self.dir.mkdir(parents=True)
        self.media = self.dir / "media"
        (self.media / "out").mkdir(parents=True)
        self.operator_token = secrets.token_urlsafe(24)
        enroll_token = secrets.token_urlsafe(24)
        (self.dir / "api-token").write_text(self.operator_token + "\n")
        (self.dir / "enroll-token").write_text(enroll_token + "\n")
        for name in ("api-token", "enroll-token"):
            (self.dir / name).chmod(0o600)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.agent_url = f"http://127.0.0.1:{free_port()}"
        self.state = self.dir / "worker"
        self.master_env = {
            "FFRTMP_MASTER_BIND": self.url.removeprefix("http://"),
            "FFRTMP_METRICS_BIND": f"127.0.0.1:{free_port()}",
            "FFRTMP_DATABASE": f"sqlite:///{self.dir / 'master.db'}",
            "FFRTMP_API_TOKEN_FILE": str(self.dir / "api-token"),
            "FFRTMP_ENROLL_TOKEN_FILE": str(self.dir / "enroll-token"),
            "FFRTMP_MEDIA_ROOTS": str(self.media),
            "FFRTMP_LOG_DIR": str(self.dir / "log"),
        }
        self.agent_env = {
            "FFRTMP_MASTER_URL": self.url,
            "FFRTMP_ENROLL_TOKEN_FILE": str(self.dir / "enroll-token"),
            "FFRTMP_MEDIA_ROOTS": str(self.media),
            "FFRTMP_LOG_DIR": str(self.dir / "log"),
            "FFRTMP_STATE_DIR": str(self.state),
            "FFRTMP_WORK_DIR": str(self.state / "work"),
            "FFRTMP_AGENT_BIND": self.agent_url.removeprefix("http://"),
            "FFRTMP_SLOTS": str(slots),
            "FFRTMP_NODE_NAME": "bench-worker",
        }
        self.master: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.operator_token}"

    def _spawn(self, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.dir / f"{command}.out").open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ffrtmp", command], env={**clean_env(), **env},
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(proc)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], url: str, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{what} exited with {proc.returncode}:\n{self.output(what)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"{what} not ready after {timeout_s:g} s:\n{self.output(what)}")

    def start(self, timeout_s: float) -> float:
        """Start both and wait for their /ready; return the agent's time to ready."""
        _STATE_DIRS.add(self.state)
        self.master = self._spawn("master", self.master_env)
        self._wait_ready(self.master, self.url, "master", timeout_s)
        started = time.monotonic()
        self.agent = self._spawn("agent", self.agent_env)
        self._wait_ready(self.agent, self.agent_url, "agent", timeout_s)
        return time.monotonic() - started

    def stop(self) -> None:
        """Agent first (it stops claiming), then the master, whose exit ends any long-poll."""
        for proc in (self.agent, self.master):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in (self.agent, self.master):
            if proc is not None:
                stop(proc)
        kill_workloads(self.state)
        self.session.close()

    def output(self, what: str) -> str:
        path = self.dir / f"{what}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def submit(self, spec: dict[str, Any]) -> str:
        reply = self.session.post(self.url + "/api/v1/jobs", json=spec, timeout=REQUEST_TIMEOUT_S)
        if reply.status_code != 201:
            raise BenchError(f"submit: {reply.status_code} {reply.text[:300]}")
        return reply.json()["job"]["id"]

    def finished(self) -> dict[str, dict[str, Any]]:
        reply = self.session.get(self.url + "/api/v1/jobs", params={"state": ",".join(FINAL), "limit": 500},
                                 timeout=REQUEST_TIMEOUT_S)
        reply.raise_for_status()
        return {job["id"]: job for job in reply.json()["jobs"]}

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.session.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=REQUEST_TIMEOUT_S)
        reply.raise_for_status()
        return reply.json()["job"]


@contextlib.contextmanager
def running_farm(base: Path, profile: Profile) -> Iterator[tuple[Farm, float]]:
    farm = Farm(base, profile.slots)
    try:
        ready_s = farm.start(profile.ready_timeout_s)
        yield farm, ready_s
    finally:
        farm.stop()


# --- scenario 3: idle agent ----------------------------------------------------------------


def process_cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def bench_idle(farm: Farm, profile: Profile, ready_s: float) -> dict[str, Any]:
    """Sample a ready agent with no work: resident memory, and CPU time over wall time."""
    assert farm.agent is not None
    agent = psutil.Process(farm.agent.pid)
    rss: list[float] = []
    load_before = os.getloadavg()[0]
    cpu0, wall0 = process_cpu_s(agent), time.monotonic()
    deadline = wall0 + profile.idle_window_s
    while True:
        rss.append(agent.memory_info().rss / 2**20)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(profile.idle_sample_s, left))
    wall = time.monotonic() - wall0
    cpu = process_cpu_s(agent) - cpu0
    return {"window_s": round(wall, 1), "samples": len(rss), "agent_ready_s": round(ready_s, 2),
            "rss_mb_max": round(max(rss), 1), "rss_mb_mean": round(statistics.mean(rss), 1),
            "cpu_s": round(cpu, 3), "cpu_pct": round(100 * cpu / wall, 3),
            "threads": agent.num_threads(),
            "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


# --- scenario 2: farm against xargs -P2 ------------------------------------------------------


def parse_ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def run_xargs(argvs: list[list[str]], slots: int, timeout_s: float, *,
              sessions: bool = True) -> dict[str, Any]:
    """The baseline: ``xargs -0 -P<slots> -n<args> [setsid -w] ffmpeg``, NUL-separated (no quoting).

    With ``sessions``, each ffmpeg starts in its own session, as the wrapper starts every
    workload. That matters under Linux's autogroup scheduling: each session is one group for
    the CPU scheduler, so on a busy machine two ffmpeg in one session get half the CPU share
    two ffmpeg in two sessions get, and the farm would win for the wrong reason.
    """
    per_job = {len(a) for a in argvs}
    if len(per_job) != 1:
        raise BenchError("the jobs' argv lengths differ; xargs -n needs one length")
    count = per_job.pop() - 1
    payload = b"".join(arg.encode() + b"\0" for argv in argvs for arg in argv[1:])
    prefix = ["setsid", "--wait"] if sessions else []
    cpu = children_cpu_s()
    wall = run_bounded(["xargs", "-0", f"-P{slots}", f"-n{count}", *prefix, argvs[0][0]], timeout_s,
                       stdin=payload)
    return {"wall_s": round(wall, 3), "jobs_per_s": round(len(argvs) / wall, 4),
            "job_s": round(slots * wall / len(argvs), 3), "cpu_s": round(children_cpu_s() - cpu, 2)}


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


def run_farm(farm: Farm, specs: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    """Submit every spec, wait for every job to finish; wall = first submit → last finished_at."""
    assert farm.master is not None and farm.agent is not None
    split = CpuSplit(farm.master.pid, farm.agent.pid)
    cpu0 = split.sample()
    first_submit = time.time()
    ids = [farm.submit(spec) for spec in specs]
    submitted = time.time() - first_submit
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while True:
        done = {k: v for k, v in farm.finished().items() if k in set(ids)}
        if len(done) == len(ids):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"farm: {len(done)} of {len(ids)} jobs finished within {timeout_s:.0f} s")
        if farm.agent.poll() is not None:
            raise BenchError(f"agent exited with {farm.agent.returncode}:\n{farm.output('agent')}")
        time.sleep(0.5)
    cpu = CpuSplit.delta(cpu0, split.sample())
    bad = [j for j in done.values() if j["state"] != "succeeded"]
    if bad:
        raise BenchError(f"farm: {len(bad)} job(s) did not succeed, e.g. {bad[0]['id']} {bad[0]['state']}")
    last = max(parse_ts(j["finished_at"]) or 0.0 for j in done.values())
    wall = last - first_submit
    details = [farm.job(job_id) for job_id in ids]
    return {"ids": ids, "wall_s": round(wall, 3), "jobs_per_s": round(len(ids) / wall, 4),
            "submit_s": round(submitted, 3), "cpu": cpu,
            "agent_rss_mb_after": round(psutil.Process(farm.agent.pid).memory_info().rss / 2**20, 1),
            "timing": job_timing(details, wall, int(farm.agent_env["FFRTMP_SLOTS"]))}


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


def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def bench_farm(farm: Farm, profile: Profile, started: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Calibrate one job, then xargs and the farm on the same specs, round after round."""
    out_dir = farm.media / "out"
    progress_dir = farm.dir / "xargs"
    progress_dir.mkdir()

    def make_argv(content_s: float) -> list[str]:
        spec = testsrc_spec(farm.media, "calibrate", content_s, "640x360", 25, "h264-360p")
        return argv_for(spec, farm.media, progress_dir / "calibrate.txt")

    calibration = calibrate(make_argv, profile.farm_job_s, min(2.0, profile.farm_job_s),
                            concurrency=profile.slots)
    content_s = calibration["content_s"]
    specs = [testsrc_spec(farm.media, f"job-{i:03d}", content_s, "640x360", 25, "h264-360p")
             for i in range(profile.farm_jobs)]
    argvs = [argv_for(spec, farm.media, progress_dir / f"progress-{i:03d}.txt")
             for i, spec in enumerate(specs)]
    expected_s = profile.farm_jobs * profile.farm_job_s / profile.slots
    bound = max(120.0, 6 * expected_s)
    rounds: list[dict[str, Any]] = []
    for number in range(1, profile.farm_rounds + 1):
        round_started = time.monotonic()
        load_before = os.getloadavg()[0]
        for path in out_dir.glob("job-*.mp4"):
            path.unlink()
        log(f"farm round {number}: xargs -P{profile.slots}, {profile.farm_jobs} jobs "
            f"of {content_s} s content …")
        baseline = run_xargs(argvs, profile.slots, bound)
        missing = [s for s in specs if not _nonempty(Path(s["outputs"][0]["url"].removeprefix("file://")))]
        if missing:
            raise BenchError(f"xargs left {len(missing)} empty output(s)")
        for path in out_dir.glob("job-*.mp4"):
            path.unlink()
        log(f"farm round {number}: master + agent ({profile.slots} slots), {profile.farm_jobs} jobs …")
        measured = run_farm(farm, specs, bound)
        if any(not _nonempty(Path(s["outputs"][0]["url"].removeprefix("file://"))) for s in specs):
            raise BenchError("the farm left an empty output")
        measured["timing"]["argv_identical"] = same_work(farm, measured.pop("ids"), argvs)
        cpu = measured["cpu"]
        farm_cpu = cpu["jobs_cpu_s"] + cpu["master_cpu_s"] + cpu["agent_cpu_s"]
        rounds.append({"round": number, "xargs": baseline, "farm": measured,
                       "ratio": round(measured["jobs_per_s"] / baseline["jobs_per_s"], 4),
                       "cpu_ratio": round(farm_cpu / baseline["cpu_s"], 4) if baseline["cpu_s"] else 0.0,
                       "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
        took = time.monotonic() - round_started
        if time.monotonic() - started + 1.2 * took > profile.deadline_s:
            break
    ratios = [r["ratio"] for r in rounds]
    return {"jobs": profile.farm_jobs, "slots": profile.slots, "calibration": calibration,
            "spec": specs[0], "argv": argvs[0], "rounds": rounds,
            "ratio_mean": round(statistics.mean(ratios), 4), "ratio_min": min(ratios)}


# --- the run -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    ffmpeg = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True,
                            timeout=30, check=False).stdout.split("\n", 1)[0]
    ffmpeg = " ".join(ffmpeg.split()[:3])  # "ffmpeg version X", without the copyright
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "ffmpeg": ffmpeg, "load_avg_1m_before": round(os.getloadavg()[0], 2)}


def standard_error(samples: Sequence[float], *, of_median: bool = False) -> float | None:
    """How far the mean (or median: x1.25) of ``samples`` may be off by noise alone; None if < 2."""
    if len(samples) < 2:
        return None
    error = statistics.stdev(samples) / len(samples) ** 0.5
    return round(error * (1.2533 if of_median else 1.0), 4)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal, met or not, and whether the run's own noise is small enough to tell.

    A ratio within two standard errors of its goal is reported as inconclusive: on a shared
    machine one pair of 5 s encodes can differ by 10 % for reasons of its own.
    """
    measured: dict[str, tuple[float, float | None]] = {}
    if "wrapper" in result:
        w = result["wrapper"]
        measured["wrapper_overhead_ratio"] = (w["ratio"], standard_error(w["pair_ratios"], of_median=True))
    if "farm" in result:
        f = result["farm"]
        rounds = [r["ratio"] for r in f["rounds"]]
        measured["farm_throughput_ratio"] = (f["ratio_mean"], standard_error(rounds))
    if "idle" in result:
        measured["idle_rss_mb"] = (result["idle"]["rss_mb_max"], None)
        measured["idle_cpu_pct"] = (result["idle"]["cpu_pct"], None)
    verdict = {}
    for key, (value, noise) in measured.items():
        op, target = GOALS[key]
        met = value <= target if op == "<=" else value >= target
        conclusive = noise is None or abs(value - target) > 2 * noise
        verdict[key] = {"goal": f"{op} {target:g}", "measured": value, "met": met, "noise": noise,
                        "conclusive": conclusive}
    return verdict


SCENARIOS = ("wrapper", "idle", "farm")


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: Callable[[str], None] = print,
        workdir: Path | None = None) -> dict[str, Any]:
    """Run the chosen scenarios; every process started is stopped before this returns."""
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="ffrtmp-worker-bench-")) if workdir is None else workdir
    started = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "worker", "profile": dataclasses.asdict(profile),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "settings": {"master": "defaults (heartbeat 5 s, duty 2 s), as in the demo",
                     "agent": f"defaults, FFRTMP_SLOTS={profile.slots}"},
    }
    try:
        if "wrapper" in scenarios:
            result["wrapper"] = bench_wrapper(base, profile, log)
        if "idle" in scenarios or "farm" in scenarios:
            _check_deadline(started, profile)
            log("starting a master and an agent …")
            with running_farm(base, profile) as (farm, ready_s):
                if "idle" in scenarios:
                    log(f"idle agent: sampling for {profile.idle_window_s:g} s …")
                    result["idle"] = bench_idle(farm, profile, ready_s)
                if "farm" in scenarios:
                    _check_deadline(started, profile)
                    result["farm"] = bench_farm(farm, profile, started, log)
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
    busy = m["load_avg_1m_before"] > 0.5 * (m["cpus"] or 1)
    lines = [f"ffrtmp worker benchmark ({result['profile']['name']}) — {m['cpus']} CPUs, "
             f"Python {m['python']}, {m['ffmpeg']}",
             f"master and agent: {result['settings']['master']}; agent {result['settings']['agent']}",
             f"load average (1 min) before {m['load_avg_1m_before']}, after {m['load_avg_1m_after']}"
             + (" — other work was running; ratios share its noise" if busy else ""), ""]
    row = "{:<46} {:>12} {:>12} {:>10}"
    lines.append(row.format("figure", "measured", "baseline", "ratio"))
    if "wrapper" in result:
        w = result["wrapper"]
        lines.append(row.format(f"wrapper run vs bare ffmpeg, median of {w['pairs']} (s)",
                                w["wrapped_median_s"], w["bare_median_s"], f"{w['ratio']:.4f}"))
        lines.append(row.format("  CPU of the run, median (s)", w["wrapped_cpu_median_s"],
                                w["bare_cpu_median_s"], f"{w['cpu_ratio']:.4f}"))
        lines.append(row.format("  pair ratios: min / max", min(w["pair_ratios"]), max(w["pair_ratios"]), ""))
        lines.append(row.format("  fixed cost around /bin/true: wall / CPU (ms)", w["fixed_cost"]["wall_ms"],
                                w["fixed_cost"]["cpu_ms"], f"{w['fixed_cost']['ratio']:.4f}"))
        lines.append(row.format("  imports (-X importtime): total / ffrtmp (ms)", w["imports"]["total_ms"],
                                w["imports"]["ffrtmp_ms"], ""))
    if "farm" in result:
        f = result["farm"]
        for r in f["rounds"]:
            farm, xargs, t = r["farm"], r["xargs"], r["farm"]["timing"]
            title = f"farm vs xargs -P{f['slots']}, {f['jobs']} jobs, round {r['round']} (jobs/s)"
            lines.append(row.format(title,
                                    farm["jobs_per_s"], xargs["jobs_per_s"], f"{r['ratio']:.4f}"))
            lines.append(row.format("  wall (s)", farm["wall_s"], xargs["wall_s"], ""))
            lines.append(row.format("  xargs: wall per job and slot (s)", "", xargs["job_s"], ""))
            daemons_cpu = round(farm["cpu"]["master_cpu_s"] + farm["cpu"]["agent_cpu_s"], 2)
            total_cpu = round(farm["cpu"]["jobs_cpu_s"] + daemons_cpu, 2)
            lines.append(row.format("  CPU (s): wrappers+ffmpeg / master+agent", farm["cpu"]["jobs_cpu_s"],
                                    daemons_cpu, ""))
            lines.append(row.format("  CPU (s): farm total vs xargs + ffmpeg", total_cpu, xargs["cpu_s"],
                                    f"{r['cpu_ratio']:.4f}"))
            lines.append(row.format("  load average (1 min): before / after", *r["load_1m"], ""))
            lines.append(row.format("  slot utilisation / ffmpeg mean runtime (s)", t["slot_utilisation"],
                                    t["ffmpeg_runtime_mean_s"], ""))
            for step in ("confirm", "spawn", "report", "reclaim"):
                lines.append(row.format(f"  {step}: median / max (ms)", t[step]["median_ms"],
                                        t[step]["max_ms"], ""))
            lines.append(row.format("  same argv as xargs", str(t["argv_identical"]), "", ""))
    if "idle" in result:
        i = result["idle"]
        lines.append(row.format(f"idle agent RSS over {i['window_s']:g} s: max / mean (MB)", i["rss_mb_max"],
                                i["rss_mb_mean"], ""))
        lines.append(row.format("idle agent CPU (% of one core)", i["cpu_pct"], "", ""))
    lines.append("")
    for key, g in result["goals"].items():
        noise = "" if g["noise"] is None else f" ± {g['noise']}"
        doubt = "" if g["conclusive"] else " (within twice its noise: inconclusive)"
        lines.append(f"goal {key} {g['goal']}: measured {g['measured']}{noise} — "
                     f"{'met' if g['met'] else 'MISSED'}{doubt}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"worker-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop everything


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (about 40 seconds)")
    parser.add_argument("--only", choices=SCENARIOS, action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    profile = QUICK if args.quick else FULL
    try:
        result = run(profile, scenarios=args.only or SCENARIOS,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    path = write_result(result, args.out)
    try:
        print(render(result), flush=True)
    except BrokenPipeError:
        sys.stdout = None  # type: ignore[assignment]  # quiet the interpreter's final flush
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
