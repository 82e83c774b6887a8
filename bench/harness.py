"""What every benchmark here shares: the command line, the run's frame, statistics, goals, the report.

A benchmark script keeps only what it measures. This module gives it the ``--quick``/``--only``
switches, a scratch directory and a deadline, the machine's description, percentiles and
standard errors, the verdict on each goal, the JSON result file, and the processes to stop
however the run ends (a failure, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
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

from tests.processes import kill_workloads, stop_tree

from ffrtmp.isotime import now_iso

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REQUEST_TIMEOUT_S = 30.0

Log = Callable[[str], None]
Goals = dict[str, tuple[str, float]]  # figure -> ("<=" or ">=", target)

# the performance contract (docs/performance.md): figure -> (benchmark, comparison, target)
CONTRACT = {
    "claim_latency_p50_ms": ("master", "<=", 50.0),
    "claim_latency_p99_ms": ("master", "<=", 250.0),
    "dispatch_jobs_per_s": ("master", ">=", 500.0),
    "heartbeat_p99_ms": ("master", "<=", 100.0),
    "wrapper_overhead_ratio": ("worker", "<=", 1.005),  # judged on the standby wrapper (the agent's path)
    "wrapper_fixed_cost_ms": ("worker", "<=", 25.0),  # same; the cold wrapper's are shown, not judged
    "farm_throughput_ratio": ("worker", ">=", 0.95),
    "idle_rss_mb": ("worker", "<=", 60.0),
    "idle_cpu_pct": ("worker", "<=", 0.5),
    "e2e_dispatch_jobs_per_s": ("dispatch", ">=", 500.0),
    "e2e_dispatch_vs_celery_fsync": ("dispatch", ">=", 1.5),
    "e2e_dispatch_vs_celery_default": ("dispatch", ">=", 1.0),
    "claim_p99_ms_depth_0": ("depth", "<=", 25.0),
    "claim_p99_ms_depth_10k": ("depth", "<=", 25.0),
    "claim_p99_ms_depth_100k": ("depth", "<=", 25.0),
    "http_5xx": ("depth", "<=", 0.0),
    "claim_tx_worst_ms": ("depth", "<=", 5.0),
    "metrics_scrape_ms": ("depth", "<=", 50.0),
    "slot_utilisation": ("farm", ">=", 0.97),
}


def goals_of(benchmark: str) -> Goals:
    return {key: (op, target) for key, (owner, op, target) in CONTRACT.items() if owner == benchmark}


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (a process died, a wrong answer)."""


# --- processes the run started: stopped however it ends ---


LIVE: set[subprocess.Popen[bytes]] = set()
STATE_DIRS: set[Path] = set()  # agents' and wrappers' state: their workloads outlive them by design


def stop(proc: subprocess.Popen[bytes], timeout: float = 40) -> None:
    """Stop a process this run started, and whatever it left behind; it is no longer live."""
    LIVE.discard(proc)
    stop_tree(proc, timeout)


@atexit.register
def _stop_everything() -> None:
    for proc in list(LIVE):
        stop(proc, timeout=10)
    for state_dir in list(STATE_DIRS):
        kill_workloads(state_dir)


# --- statistics ---


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


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def standard_error(samples: Sequence[float], *, of_median: bool = False) -> float | None:
    """How far the mean (or median: x1.25) of ``samples`` may be off by noise alone; None if < 2."""
    if len(samples) < 2:
        return None
    error = statistics.stdev(samples) / len(samples) ** 0.5
    return round(error * (1.2533 if of_median else 1.0), 4)


def verdict(goals: Goals, measured: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each measured figure against its goal: the goal, the value, met or not."""
    result = {}
    for key, value in measured.items():
        op, target = goals[key]
        met = value <= target if op == "<=" else value >= target
        result[key] = {"goal": f"{op} {target:g}", "measured": value, "met": met}
    return result


# --- the run ---


@dataclasses.dataclass
class Run:
    """One invocation: its profile, its clock and deadline, the result's header and footer."""

    profile: Any  # a frozen dataclass with ``name`` and ``deadline_s``
    started: float = dataclasses.field(default_factory=time.monotonic)

    def header(self, benchmark: str) -> dict[str, Any]:
        return {"benchmark": benchmark, "profile": dataclasses.asdict(self.profile),
                "started_at": now_iso("seconds")}

    def check_deadline(self) -> None:
        if time.monotonic() - self.started > self.profile.deadline_s:
            raise BenchError(f"the run exceeded its {self.profile.deadline_s:g} s bound")

    def finish(self, result: dict[str, Any], goals: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        result["machine"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        result["goals"] = goals(result)
        result["duration_s"] = round(time.monotonic() - self.started, 1)
        return result


@contextlib.contextmanager
def scratch(workdir: Path | None, prefix: str) -> Iterator[Path]:
    """The given directory, or a temporary one removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix)) if workdir is None else workdir
    try:
        yield base
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def machine(**specific: Any) -> dict[str, Any]:
    """What the figures depend on: CPUs, software, and how busy the machine already was."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            **specific, "load_avg_1m_before": round(os.getloadavg()[0], 2)}


# --- the report ---


def title(result: dict[str, Any], software: str) -> str:
    m = result["machine"]
    return (f"ffrtmp {result['benchmark']} benchmark ({result['profile']['name']}) — {m['cpus']} CPUs, "
            f"Python {m['python']}, {software}")


def load_line(m: dict[str, Any], when_busy: str) -> str:
    busy = m["load_avg_1m_before"] > 0.5 * (m["cpus"] or 1)
    return (f"load average (1 min) before {m['load_avg_1m_before']}, after {m['load_avg_1m_after']}"
            + (f" — other work was running; {when_busy}" if busy else ""))


def goal_lines(goals: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for key, g in goals.items():
        noise = "" if g.get("noise") is None else f" ± {g['noise']}"
        doubt = "" if g.get("conclusive", True) else " (within twice its noise: inconclusive)"
        lines.append(f"goal {key} {g['goal']}: measured {g['measured']}{noise} — "
                     f"{'met' if g['met'] else 'MISSED'}{doubt}")
    return lines


def write_result(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{result['benchmark']}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


# --- the command line ---


def parser(doc: str | None, scenarios: Sequence[str], quick_help: str) -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    cli.add_argument("--quick", action="store_true", help=quick_help)
    cli.add_argument("--only", choices=scenarios, action="append", help="run only this scenario (repeatable)")
    cli.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    return cli


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop every process


def execute(measure: Callable[[Log], dict[str, Any]], render: Callable[[dict[str, Any]], str],
            out: Path, *, with_json: bool = False) -> int:
    """Measure, save the result, print the table (and the JSON); exit status 1 if it could not measure."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = measure(lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    path = write_result(result, out)  # first, so a closed stdout cannot lose it
    try:
        print(render(result))
        if with_json:
            print(json.dumps(result, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stdout = None  # type: ignore[assignment]  # quiet the interpreter's final flush
    print(f"wrote {path}", file=sys.stderr)
    return 0
