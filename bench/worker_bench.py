"""Worker benchmark: wrapper overhead, farm efficiency against ``xargs -P2``, idle agent cost.

Every figure is a ratio against a baseline measured in the same run, interleaved with it so
both share the machine's noise:

1. wrapper overhead: bare ``ffmpeg ARGV`` against the same argv (``-progress`` included)
   through a standby wrapper handed its call by the agent's own ``StandbyPool.hand_off``
   (the agent's path, judged: hand-off to result.json, see ``standby_runs.py``) and through a
   cold ``ffrtmp wrapper run … -- ffmpeg ARGV`` (shown), in rounds whose order rotates; the
   same three around ``/bin/true`` give the fixed costs;
2. farm efficiency: N short transcodes through a real master and one agent with two slots
   against the same N command lines (``build_argv`` on the same specs) run by ``xargs -P2``,
   each in a session of its own as the wrapper starts it (see ``run_xargs``);
3. idle agent: RSS and CPU of a registered, ready agent that has nothing to do.

Master and agent are real processes (``python -m ffrtmp master|agent``) on free loopback
ports with their files under a temporary directory, every setting at its default except the
paths, ports and ``FFRTMP_SLOTS=2``, as in the demo. Everything is bounded in time, and
every process the benchmark starts (wrappers and workloads included) is stopped before it
exits. The result is printed as a table and written to ``bench/results/worker-<time>.json``.

    python bench/worker_bench.py            # full run, about 7 minutes on 2 cores
    python bench/worker_bench.py --quick    # small counts, about 40 seconds
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from bench import harness
from bench.farm import running_farm
from bench.worker_scenarios import FULL, QUICK, Profile, bench_farm, bench_idle, bench_wrapper

GOALS = harness.goals_of("worker")
SCENARIOS = ("wrapper", "idle", "farm")


def machine() -> dict[str, Any]:
    ffmpeg = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True,
                            timeout=30, check=False).stdout.split("\n", 1)[0]
    return harness.machine(ffmpeg=" ".join(ffmpeg.split()[:3]))  # "ffmpeg version X", without the copyright


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal, met or not, and whether the run's own noise is small enough to tell.

    A ratio within two standard errors of its goal is reported as inconclusive: on a shared
    machine one pair of 5 s encodes can differ by 10 % for reasons of its own. The wrapper's
    goals are judged on the standby wrapper, the path the agent launches every job through;
    the cold wrapper's verdicts go in ``wrapper.cold_goals``, for information.
    """
    measured: dict[str, tuple[float, float | None]] = {}
    if "wrapper" in result:
        w = result["wrapper"]
        measured.update(wrapper_measures(w["standby"], w["standby"]["fixed_cost"]))
        w["cold_goals"] = judged(wrapper_measures(w, w["fixed_cost"]))
    if "farm" in result:
        f = result["farm"]
        rounds = [r["ratio"] for r in f["rounds"]]
        measured["farm_throughput_ratio"] = (f["ratio_mean"], harness.standard_error(rounds))
    if "idle" in result:
        measured["idle_rss_mb"] = (result["idle"]["rss_mb_max"], None)
        measured["idle_cpu_pct"] = (result["idle"]["cpu_pct"], None)
    return judged(measured)


def wrapper_measures(runs: dict[str, Any], fixed: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    """The wrapper's two judged figures (cold or standby) and the noise of the first."""
    noise = harness.standard_error(runs["pair_ratios"], of_median=True)
    return {"wrapper_overhead_ratio": (runs["ratio"], noise),
            "wrapper_fixed_cost_ms": (fixed["wall_ms"], None)}


def judged(measured: dict[str, tuple[float, float | None]]) -> dict[str, dict[str, Any]]:
    verdict = harness.verdict(GOALS, {key: value for key, (value, _) in measured.items()})
    for key, (value, noise) in measured.items():
        target = GOALS[key][1]
        verdict[key].update(noise=noise, conclusive=noise is None or abs(value - target) > 2 * noise)
    return verdict


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: harness.Log = print,
        workdir: Path | None = None) -> dict[str, Any]:
    """Run the chosen scenarios; every process started is stopped before this returns."""
    frame = harness.Run(profile)
    result: dict[str, Any] = {
        **frame.header("worker"), "machine": machine(),
        "settings": {"master": "defaults (heartbeat 5 s, duty 2 s), as in the demo",
                     "agent": f"defaults, FFRTMP_SLOTS={profile.slots}"},
    }
    with harness.scratch(workdir, "ffrtmp-worker-bench-") as base:
        if "wrapper" in scenarios:
            result["wrapper"] = bench_wrapper(base, profile, log)
        if "idle" in scenarios or "farm" in scenarios:
            frame.check_deadline()
            log("starting a master and an agent …")
            with running_farm(base, profile.slots, profile.ready_timeout_s) as (farm, ready_s):
                if "idle" in scenarios:
                    log(f"idle agent: sampling for {profile.idle_window_s:g} s …")
                    result["idle"] = bench_idle(farm, profile, ready_s)
                if "farm" in scenarios:
                    frame.check_deadline()
                    result["farm"] = bench_farm(farm, profile, frame.started, log)
    return frame.finish(result, goals)


# --- the report ---

ROW = "{:<62} {:>12} {:>12} {:>10}"


def render(result: dict[str, Any]) -> str:
    """The human table: one line per figure, goals marked met or missed."""
    lines = [harness.title(result, result["machine"]["ffmpeg"]),
             f"master and agent: {result['settings']['master']}; agent {result['settings']['agent']}",
             harness.load_line(result["machine"], "ratios share its noise"), "",
             ROW.format("figure", "measured", "baseline", "ratio")]
    if "wrapper" in result:
        lines.extend(wrapper_rows(result["wrapper"]))
    if "farm" in result:
        for r in result["farm"]["rounds"]:
            lines.extend(farm_rows(result["farm"], r))
    if "idle" in result:
        i = result["idle"]
        lines.append(ROW.format(f"idle agent RSS over {i['window_s']:g} s: max / mean (MB)", i["rss_mb_max"],
                                i["rss_mb_mean"], ""))
        lines.append(ROW.format("idle agent CPU (% of one core)", i["cpu_pct"], "", ""))
    info = []
    if "wrapper" in result:  # the cold wrapper is no longer the agent's path: shown, not judged
        info = ["", "cold wrapper, for information (the goals above judge the standby, the agent's path):",
                *("  " + line for line in harness.goal_lines(result["wrapper"]["cold_goals"]))]
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"]), *info])


def wrapper_rows(w: dict[str, Any]) -> list[str]:
    s, sf, f = w["standby"], w["standby"]["fixed_cost"], w["fixed_cost"]
    return [ROW.format(f"standby (the agent's path) vs bare ffmpeg, median of {w['pairs']} (s)",
                       s["standby_median_s"], w["bare_median_s"], f"{s['ratio']:.4f}"),
            ROW.format("  hand-off to result.json / to the wrapper's exit (s)", s["standby_median_s"],
                       s["exit_median_s"], f"{s['exit_ratio']:.4f}"),
            ROW.format("  CPU, start-up paid ahead included, median (s)", s["standby_cpu_median_s"],
                       w["bare_cpu_median_s"], f"{s['cpu_ratio']:.4f}"),
            ROW.format("  pair ratios: min / max", min(s["pair_ratios"]), max(s["pair_ratios"]), ""),
            ROW.format("  standby fixed cost around /bin/true: wall / CPU (ms)", sf["wall_ms"],
                       sf["cpu_ms"], f"{sf['ratio']:.4f}"),
            ROW.format("  same, hand-off to the wrapper's exit: wall (ms)", sf["exit_wall_ms"], "", ""),
            ROW.format(f"cold wrapper run vs bare ffmpeg, median of {w['pairs']} (s)",
                       w["wrapped_median_s"], w["bare_median_s"], f"{w['ratio']:.4f}"),
            ROW.format("  CPU of the run, median (s)", w["wrapped_cpu_median_s"],
                       w["bare_cpu_median_s"], f"{w['cpu_ratio']:.4f}"),
            ROW.format("  pair ratios: min / max", min(w["pair_ratios"]), max(w["pair_ratios"]), ""),
            ROW.format("  cold fixed cost around /bin/true: wall / CPU (ms)", f["wall_ms"],
                       f["cpu_ms"], f"{f['ratio']:.4f}"),
            ROW.format("  imports (-X importtime): total / ffrtmp (ms)", w["imports"]["total_ms"],
                       w["imports"]["ffrtmp_ms"], "")]


def farm_rows(f: dict[str, Any], r: dict[str, Any]) -> list[str]:
    farm, xargs, t = r["farm"], r["xargs"], r["farm"]["timing"]
    title = f"farm vs xargs -P{f['slots']}, {f['jobs']} jobs, round {r['round']} (jobs/s)"
    daemons_cpu = round(farm["cpu"]["master_cpu_s"] + farm["cpu"]["agent_cpu_s"], 2)
    total_cpu = round(farm["cpu"]["jobs_cpu_s"] + daemons_cpu, 2)
    lines = [ROW.format(title, farm["jobs_per_s"], xargs["jobs_per_s"], f"{r['ratio']:.4f}"),
             ROW.format("  wall (s)", farm["wall_s"], xargs["wall_s"], ""),
             ROW.format("  xargs: wall per job and slot (s)", "", xargs["job_s"], ""),
             ROW.format("  CPU (s): wrappers+ffmpeg / master+agent", farm["cpu"]["jobs_cpu_s"],
                        daemons_cpu, ""),
             ROW.format("  CPU (s): farm total vs xargs + ffmpeg", total_cpu, xargs["cpu_s"],
                        f"{r['cpu_ratio']:.4f}"),
             ROW.format("  load average (1 min): before / after", *r["load_1m"], ""),
             ROW.format("  slot utilisation / ffmpeg mean runtime (s)", t["slot_utilisation"],
                        t["ffmpeg_runtime_mean_s"], "")]
    for step in ("confirm", "spawn", "report", "reclaim"):
        lines.append(ROW.format(f"  {step}: median / max (ms)", t[step]["median_ms"], t[step]["max_ms"], ""))
    return [*lines, ROW.format("  same argv as xargs", str(t["argv_identical"]), "", "")]


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parser(__doc__, SCENARIOS, "small counts (about 40 seconds)").parse_args(argv)
    profile = QUICK if args.quick else FULL
    return harness.execute(lambda log: run(profile, scenarios=args.only or SCENARIOS, log=log),
                           render, args.out)


if __name__ == "__main__":
    sys.exit(main())
