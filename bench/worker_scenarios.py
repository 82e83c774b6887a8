"""The worker benchmark's scenarios: wrapper overhead, the farm against ``xargs -P``, an idle agent.

Each returns its figures; ``worker_bench.py`` orders them, judges the goals and reports.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from bench.baselines import (
    argv_for,
    calibrate,
    import_time_ms,
    paired_runs,
    run_bounded,
    run_xargs,
    testsrc_spec,
    wrapper_command,
)
from bench.farm import Farm, process_cpu_s, run_farm, same_work
from bench.harness import STATE_DIRS, BenchError, Log, median
from bench.standby_runs import StandbyRunner


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


# --- scenario 1: wrapper overhead ---


def bench_wrapper(base: Path, profile: Profile, log: Log) -> dict[str, Any]:
    """Bare ffmpeg, the same argv under a cold wrapper and under a standby one, interleaved."""
    directory = base / "wrapper"
    media, state, logs = directory / "media", directory / "state", directory / "log"
    (media / "out").mkdir(parents=True)
    STATE_DIRS.add(state)
    progress = directory / "progress.txt"

    def make_argv(content_s: float) -> list[str]:
        spec = testsrc_spec(media, "wrapper", content_s, "1280x720", 30, "h264-720p")
        return argv_for(spec, media, progress)

    calibration = calibrate(make_argv, profile.wrapper_encode_s,
                            min(2.0, profile.wrapper_encode_s), concurrency=1)
    argv = make_argv(calibration["content_s"])
    bound = max(60.0, 10 * profile.wrapper_encode_s)
    log(f"wrapper: {calibration['content_s']} s of 1280x720 content per encode, "
        f"{profile.wrapper_pairs} rounds of bare / cold / standby …")
    run_bounded(wrapper_command("warm-up", state, logs, ["true"]), 60, state_dir=state)
    standby = StandbyRunner(state, logs, directory / "jobs")
    try:
        standby.run("warm-up-standby", ["true"], 60)
        pairs, fixed, load = wrapper_rounds(profile, argv, bound, state, logs, standby)
    finally:
        standby.close()
    bare_median = median(pairs["bare"])
    return {"argv": argv, "calibration": calibration, **wrapper_figures(profile, pairs), "load_1m": load,
            "fixed_cost": fixed_cost(profile, fixed, bare_median, "wrapped"),
            "standby": {**standby_figures(pairs, standby.exits_s, "pair-"),
                        "fixed_cost": standby_fixed_cost(profile, fixed, bare_median, standby.exits_s)},
            "imports": import_time_ms()}


Runs = dict[str, list[float]]


def wrapper_rounds(profile: Profile, argv: list[str], bound: float, state: Path, logs: Path,
                   standby: StandbyRunner) -> tuple[Runs, Runs, list[float]]:
    """The encode rounds (order rotating each round), then the rounds around /bin/true."""

    def cold(job_id: str, command: list[str], timeout_s: float) -> float:
        return run_bounded(wrapper_command(job_id, state, logs, command), timeout_s, state_dir=state)

    load_before = os.getloadavg()[0]
    pairs = paired_runs(profile.wrapper_pairs, {
        "bare": lambda index: run_bounded(argv, bound),
        "wrapped": lambda index: cold(f"pair-{index}", argv, bound),
        "standby": lambda index: standby.run(f"pair-{index}", argv, bound)}, alternate=True)
    load_after = os.getloadavg()[0]
    fixed = paired_runs(profile.fixed_cost_runs, {
        "bare": lambda index: run_bounded(["true"], 60, state_dir=state),
        "wrapped": lambda index: cold(f"true-{index}", ["true"], 60),
        "standby": lambda index: standby.run(f"true-{index}", ["true"], 60)}, alternate=False)
    return pairs, fixed, [round(load_before, 2), round(load_after, 2)]


def wrapper_figures(profile: Profile, pairs: dict[str, list[float]]) -> dict[str, Any]:
    """The cold wrapper (``ffrtmp wrapper run`` started per job) against bare ffmpeg."""
    bare, wrapped = pairs["bare"], pairs["wrapped"]
    ratios = [w / b for b, w in zip(bare, wrapped, strict=True)]
    return {
        "pairs": profile.wrapper_pairs,
        "bare_s": [round(x, 3) for x in bare], "wrapped_s": [round(x, 3) for x in wrapped],
        "bare_median_s": round(median(bare), 3), "wrapped_median_s": round(median(wrapped), 3),
        "ratio": round(median(wrapped) / median(bare), 4),
        "pair_ratios": [round(r, 4) for r in ratios],
        # CPU time hardly depends on what else runs: a cross-check when the wall clock is noisy
        "bare_cpu_median_s": round(median(pairs["bare_cpu"]), 3),
        "wrapped_cpu_median_s": round(median(pairs["wrapped_cpu"]), 3),
        "cpu_ratio": round(median(pairs["wrapped_cpu"]) / median(pairs["bare_cpu"]), 4),
    }


def standby_figures(runs: dict[str, list[float]], exits_s: dict[str, float], prefix: str) -> dict[str, Any]:
    """A standby wrapper (the agent's path) against bare: hand-off to result.json, and to exit.

    Its CPU is the whole process's, start-up included, though that was paid before the hand-off.
    """
    bare, standby = runs["bare"], runs["standby"]
    exits = [s for job, s in exits_s.items() if job.startswith(prefix)]  # in run order
    return {
        "standby_s": [round(x, 3) for x in standby], "exit_s": [round(x, 3) for x in exits],
        "standby_median_s": round(median(standby), 3), "exit_median_s": round(median(exits), 3),
        "ratio": round(median(standby) / median(bare), 4),
        "exit_ratio": round(median(exits) / median(bare), 4),
        "pair_ratios": [round(s / b, 4) for b, s in zip(bare, standby, strict=True)],
        "standby_cpu_median_s": round(median(runs["standby_cpu"]), 3),
        "cpu_ratio": round(median(runs["standby_cpu"]) / median(runs["bare_cpu"]), 4),
    }


def fixed_cost(profile: Profile, fixed: dict[str, list[float]], bare_median_s: float,
               kind: str) -> dict[str, Any]:
    """A wrapper (``kind``: cold or standby) around /bin/true: its fixed cost alone, and what
    that makes of the encode."""
    wall_ms = (median(fixed[kind]) - median(fixed["bare"])) * 1000
    return {
        "runs": profile.fixed_cost_runs,
        "wall_ms": round(wall_ms, 1),
        "cpu_ms": round((median(fixed[f"{kind}_cpu"]) - median(fixed["bare_cpu"])) * 1000, 1),
        # what the fixed cost alone makes of this encode: steadier than the pairs' ratio
        "ratio": round(1 + wall_ms / 1000 / bare_median_s, 4),
    }


def standby_fixed_cost(profile: Profile, fixed: Runs, bare_median_s: float,
                       exits_s: dict[str, float]) -> dict[str, Any]:
    """A standby around /bin/true: hand-off to result.json (judged), and to its exit."""
    exits = [s for job, s in exits_s.items() if job.startswith("true-")]
    return {**fixed_cost(profile, fixed, bare_median_s, "standby"),
            "exit_wall_ms": round((median(exits) - median(fixed["bare"])) * 1000, 1),
            "standby_s": [round(x, 4) for x in fixed["standby"]],
            "bare_s": [round(x, 4) for x in fixed["bare"]]}


# --- scenario 3: idle agent ---


def bench_idle(farm: Farm, profile: Profile, ready_s: float) -> dict[str, Any]:
    """Sample a ready agent with no work: resident memory, and CPU time over wall time."""
    agent = psutil.Process(farm.agent_pid)
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

# --- scenario 2: farm against xargs -P2 ---


def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def farm_round(farm: Farm, profile: Profile, number: int, specs: list[dict[str, Any]],
               argvs: list[list[str]], content_s: float, bound: float, log: Log) -> dict[str, Any]:
    """xargs then the farm on the same specs; their throughput and CPU ratios."""
    out_dir = farm.media / "out"
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
    return {"round": number, "xargs": baseline, "farm": measured,
            "ratio": round(measured["jobs_per_s"] / baseline["jobs_per_s"], 4),
            "cpu_ratio": round(farm_cpu / baseline["cpu_s"], 4) if baseline["cpu_s"] else 0.0,
            "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def bench_farm(farm: Farm, profile: Profile, started: float, log: Log) -> dict[str, Any]:
    """Calibrate one job, then xargs and the farm on the same specs, round after round."""
    progress_dir = farm.dir / "xargs"
    progress_dir.mkdir()

    def make_argv(content_s: float) -> list[str]:
        spec = testsrc_spec(farm.media, "calibrate", content_s, "640x360", 25, "h264-360p")
        return argv_for(spec, farm.media, progress_dir / "calibrate.txt")

    calibration = calibrate(make_argv, profile.farm_job_s, min(2.0, profile.farm_job_s),
                            concurrency=profile.slots)
    specs = [testsrc_spec(farm.media, f"job-{i:03d}", calibration["content_s"], "640x360", 25, "h264-360p")
             for i in range(profile.farm_jobs)]
    argvs = [argv_for(spec, farm.media, progress_dir / f"progress-{i:03d}.txt")
             for i, spec in enumerate(specs)]
    bound = max(120.0, 6 * profile.farm_jobs * profile.farm_job_s / profile.slots)
    rounds: list[dict[str, Any]] = []
    for number in range(1, profile.farm_rounds + 1):
        round_started = time.monotonic()
        rounds.append(farm_round(farm, profile, number, specs, argvs, calibration["content_s"], bound, log))
        took = time.monotonic() - round_started
        if time.monotonic() - started + 1.2 * took > profile.deadline_s:
            break
    ratios = [r["ratio"] for r in rounds]
    return {"jobs": profile.farm_jobs, "slots": profile.slots, "calibration": calibration,
            "spec": specs[0], "argv": argvs[0], "rounds": rounds,
            "ratio_mean": round(statistics.mean(ratios), 4), "ratio_min": min(ratios)}
