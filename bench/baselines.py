"""What the worker benchmark compares the farm with, run the way the farm runs its jobs.

Bare ``ffmpeg`` and ``xargs -P`` run each command in a session of its own, bounded in
time, and the encodes are calibrated so that one takes the wall time the profile asks
for on this machine; the argv is the one the agent builds (``build_argv``).
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.processes import clean_env, kill_workloads

from bench.harness import LIVE, BenchError, stop
from ffrtmp import jobspec
from ffrtmp.agent.argv import build_argv
from ffrtmp.wrapper.cmdline import WrapperCall, entry

# --- bounded runs ---


def run_bounded(argv: list[str], timeout_s: float, *, stdin: bytes | None = None,
                state_dir: Path | None = None) -> float:
    """Run to success in its own session and return its wall time; killed past the bound."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env=clean_env())
    LIVE.add(proc)
    try:
        _, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc, timeout=5)
        if state_dir is not None:
            kill_workloads(state_dir)
        raise BenchError(f"{Path(argv[0]).name} took over {timeout_s:.0f} s") from None
    except BaseException:  # Ctrl-C or SIGTERM: leave nothing running
        stop(proc, timeout=5)
        raise
    finally:
        LIVE.discard(proc)
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


# --- job specs, argv and calibration ---


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
        LIVE.add(procs[-1])
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
            stop(proc, timeout=5)
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


# --- the wrapper and xargs ---


def wrapper_command(job_id: str, state: Path, logs: Path, argv: list[str]) -> list[str]:
    """``ffrtmp wrapper run`` started the way the agent starts it (this interpreter, ``-m``)."""
    return WrapperCall(mode="run", job_id=job_id, state_dir=str(state), log_dir=str(logs),
                       command=tuple(argv)).argv()


def import_time_ms() -> dict[str, float]:
    """Interpreter start-up and the wrapper's imports, from ``-X importtime`` (microseconds in)."""
    python, *command = entry("run")
    out = subprocess.run([python, "-X", "importtime", *command, "--help"],
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



def paired_runs(count: int, runs: dict[str, Callable[[int], float]], *,
                alternate: bool) -> dict[str, list[float]]:
    """Wall time and reaped CPU of ``count`` rounds of every run in ``runs`` (bare first).

    With ``alternate``, each round starts one run later in the order than the last, so a
    drift in the machine's load hits every kind alike.
    """
    kinds = list(runs)
    out: dict[str, list[float]] = {key: [] for kind in kinds for key in (kind, f"{kind}_cpu")}
    for index in range(count):
        shift = index % len(kinds) if alternate else 0
        for kind in kinds[shift:] + kinds[:shift]:
            used = children_cpu_s()
            out[kind].append(runs[kind](index))
            out[f"{kind}_cpu"].append(children_cpu_s() - used)
    return out
