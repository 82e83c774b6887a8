"""Slot-utilisation benchmark: a master and one agent with 2 slots against ``xargs -P2``, batch by batch.

The same N short transcodes (calibrated to about 2 s each while the other slot is busy) run as
interleaved batches: xargs, then the farm, then the farm, then xargs, and so on, each batch
against the same argv lists (``build_argv`` on the same specs; xargs starts each FFmpeg in a
session of its own, as the wrapper does). Per farm batch:

- slot utilisation: the share of each slot's time spent in FFmpeg, from the wrapper results'
  start and end times. The batch's encodes are laid on the slots in start order (each on the
  slot that became free first) and each slot's span runs from its first encode's start to its
  last encode's end, so the figure is what the farm loses between one encode and the next in
  a slot, not the batch's ramp-up or its tail (one slot idle while the other ends its last job:
  xargs has that too);
- the farm/xargs throughput ratio of the batch and the xargs batch next to it (wall: first
  submit → last ``finished_at`` for the farm, the process's run for xargs).

    python bench/farm_bench.py            # 6 pairs of batches of 10 jobs of 2 s, about 4 minutes
    python bench/farm_bench.py --quick    # 2 pairs of 6 jobs of 1 s
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from bench import harness
from bench.baselines import argv_for, calibrate, run_xargs, testsrc_spec
from bench.farm import Farm, parse_ts, run_farm, running_farm, same_work
from bench.harness import BenchError, Log, median

GOALS = harness.goals_of("farm")
SCENARIOS = ("farm",)


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    jobs: int = 10  # per batch
    job_s: float = 2.0  # wall time of one job while the other slot is busy
    pairs: int = 6  # xargs and farm batches, the order alternating
    slots: int = 2
    ready_timeout_s: float = 60.0
    deadline_s: float = 900.0


FULL = Profile("full")
QUICK = Profile("quick", jobs=6, job_s=1.0, pairs=2, deadline_s=300.0)


def slot_spans(encodes: list[tuple[float, float]], slots: int) -> dict[str, Any]:
    """Lay (start, end) encodes on ``slots`` slots in start order, each on the slot free first;
    the time in FFmpeg over each slot's first-start → last-end span, and the gaps between."""
    lanes = [[encodes[k] for k in lane] for lane in lanes_of(encodes, slots)]
    busy = span = 0.0
    gaps: list[float] = []
    for jobs in (lane for lane in lanes if lane):
        busy += sum(end - start for start, end in jobs)
        span += jobs[-1][1] - jobs[0][0]
        gaps += [max(0.0, b[0] - a[1]) for a, b in itertools.pairwise(jobs)]
    window = max(e for _, e in encodes) - min(s for s, _ in encodes) if encodes else 0.0
    return {"slot_utilisation": round(busy / span, 4) if span else 0.0,
            "window_utilisation": round(busy / (slots * window), 4) if window else 0.0,
            "gap_ms": {"median": round(median(gaps) * 1000, 1),
                       "max": round(max(gaps) * 1000, 1) if gaps else 0.0, "count": len(gaps)},
            "jobs_per_slot": [len(lane) for lane in lanes]}


def lanes_of(encodes: list[tuple[float, float]], slots: int) -> list[list[int]]:
    """The encodes' indexes laid on ``slots`` slots in start order, each on the slot free first."""
    lanes: list[list[int]] = [[] for _ in range(slots)]
    for k in sorted(range(len(encodes)), key=lambda k: encodes[k]):
        min(lanes, key=lambda lane: encodes[lane[-1]][1] if lane else float("-inf")).append(k)
    return lanes


def slot_gaps(steps: list[dict[str, float]], slots: int) -> dict[str, Any]:
    """Where each gap between one encode and the next in a slot goes, by the clocks of the
    wrapper (FFmpeg's start and end) and the master (assigned, started): exit → the next job
    assigned, assigned → its start confirmed, confirmed → its FFmpeg started."""
    encodes = [(s["ffmpeg_start"], s["ffmpeg_end"]) for s in steps]
    parts: dict[str, list[float]] = {"exit_to_assigned": [], "assigned_to_started": [],
                                     "started_to_ffmpeg": []}
    for lane in lanes_of(encodes, slots):
        for a, b in itertools.pairwise(lane):
            before, after = steps[a], steps[b]
            parts["exit_to_assigned"].append(after["assigned"] - before["ffmpeg_end"])
            parts["assigned_to_started"].append(after["started"] - after["assigned"])
            parts["started_to_ffmpeg"].append(after["ffmpeg_start"] - after["started"])
    return {k: {"median_ms": round(median(v) * 1000, 1),
                "max_ms": round(max(v) * 1000, 1) if v else 0.0} for k, v in parts.items()}


def steps_of(farm: Farm, ids: list[str]) -> list[dict[str, float]]:
    """Each job's FFmpeg start and end, as its wrapper reported them, and when the master
    assigned its attempt and saw it start."""
    out = []
    for job_id in ids:
        attempt = farm.job(job_id)["attempts"][-1]
        result = attempt["result"] or {}
        times = {"ffmpeg_start": parse_ts(result.get("started_at")),
                 "ffmpeg_end": parse_ts(result.get("ended_at")),
                 "assigned": parse_ts(attempt["assigned_at"]), "started": parse_ts(attempt["started_at"])}
        if None in times.values():
            raise BenchError(f"job {job_id}: no FFmpeg start/end in its result, or no start")
        out.append({k: float(v or 0.0) for k, v in times.items()})
    return out


def clear_outputs(farm: Farm) -> None:
    for path in (farm.media / "out").glob("job-*.mp4"):
        path.unlink()


def farm_batch(farm: Farm, specs: list[dict[str, Any]], argvs: list[list[str]],
               bound: float) -> dict[str, Any]:
    clear_outputs(farm)
    measured = run_farm(farm, specs, bound)
    ids = measured.pop("ids")
    steps = steps_of(farm, ids)
    encodes = [(s["ffmpeg_start"], s["ffmpeg_end"]) for s in steps]
    return {"wall_s": measured["wall_s"], "jobs_per_s": measured["jobs_per_s"],
            "argv_identical": same_work(farm, ids, argvs), "cpu": measured["cpu"],
            "ffmpeg_mean_s": round(statistics.mean(e - s for s, e in encodes), 3),
            "whole_wall_utilisation": measured["timing"]["slot_utilisation"],
            "steps": {k: measured["timing"][k] for k in ("confirm", "spawn", "report", "reclaim")},
            "gap_steps": slot_gaps(steps, farm.slots), **slot_spans(encodes, farm.slots)}


def xargs_batch(farm: Farm, argvs: list[list[str]], slots: int, bound: float) -> dict[str, Any]:
    clear_outputs(farm)
    return run_xargs(argvs, slots, bound)


def bench_batches(farm: Farm, profile: Profile, frame: harness.Run, log: Log) -> dict[str, Any]:
    """Calibrate one job, then pairs of batches on the same specs, the order alternating."""
    progress_dir = farm.dir / "xargs"
    progress_dir.mkdir()

    def make_argv(content_s: float) -> list[str]:
        spec = testsrc_spec(farm.media, "calibrate", content_s, "640x360", 25, "h264-360p")
        return argv_for(spec, farm.media, progress_dir / "calibrate.txt")

    calibration = calibrate(make_argv, profile.job_s, min(2.0, profile.job_s), concurrency=profile.slots)
    specs = [testsrc_spec(farm.media, f"job-{i:03d}", calibration["content_s"], "640x360", 25, "h264-360p")
             for i in range(profile.jobs)]
    argvs = [argv_for(spec, farm.media, progress_dir / f"progress-{i:03d}.txt")
             for i, spec in enumerate(specs)]
    bound = max(120.0, 6 * profile.jobs * profile.job_s / profile.slots)
    pairs = []
    for number in range(1, profile.pairs + 1):
        frame.check_deadline()
        first = "xargs" if number % 2 else "farm"
        log(f"pair {number}: {first} first, {profile.jobs} jobs of {calibration['content_s']} s content …")
        load = os.getloadavg()[0]
        pair: dict[str, Any] = {"pair": number, "first": first}
        for kind in ((first, "farm" if first == "xargs" else "xargs")):
            pair[kind] = (xargs_batch(farm, argvs, profile.slots, bound) if kind == "xargs"
                          else farm_batch(farm, specs, argvs, bound))
        pair["ratio"] = round(pair["farm"]["jobs_per_s"] / pair["xargs"]["jobs_per_s"], 4)
        pair["load_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        pairs.append(pair)
    return {"jobs": profile.jobs, "slots": profile.slots, "calibration": calibration, "argv": argvs[0],
            "pairs": pairs, "summary": summary(pairs)}


def summary(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    util = [p["farm"]["slot_utilisation"] for p in pairs]
    ratios = [p["ratio"] for p in pairs]
    return {"slot_utilisation": util, "slot_utilisation_median": round(median(util), 4),
            "slot_utilisation_min": min(util), "ratios": ratios, "ratio_median": round(median(ratios), 4),
            "window_utilisation_median": round(median([p["farm"]["window_utilisation"] for p in pairs]), 4),
            "argv_identical": all(p["farm"]["argv_identical"] for p in pairs)}


def run(profile: Profile, *, log: Log = print, workdir: Path | None = None) -> dict[str, Any]:
    frame = harness.Run(profile)
    ffmpeg = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True,
                            timeout=30, check=False).stdout.split("\n", 1)[0]
    result: dict[str, Any] = {**frame.header("farm"),
                              "machine": harness.machine(ffmpeg=" ".join(ffmpeg.split()[:3])),
                              "settings": {"master": "defaults",
                                           "agent": f"defaults, FFRTMP_SLOTS={profile.slots}"}}
    with harness.scratch(workdir, "ffrtmp-farm-bench-") as base:
        log("starting a master and an agent …")
        with running_farm(base, profile.slots, profile.ready_timeout_s) as (farm, _):
            result["farm"] = bench_batches(farm, profile, frame, log)
    return frame.finish(result, goals)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s = result["farm"]["summary"]
    verdict = harness.verdict(GOALS, {"slot_utilisation": s["slot_utilisation_median"]})
    noise = harness.standard_error(s["slot_utilisation"], of_median=True)
    verdict["slot_utilisation"].update(noise=noise, conclusive=noise is None
                                       or abs(s["slot_utilisation_median"] - 0.97) > 2 * noise)
    return verdict


ROW = "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9}"


def render(result: dict[str, Any]) -> str:
    f, s = result["farm"], result["farm"]["summary"]
    lines = [harness.title(result, result["machine"]["ffmpeg"]),
             f"master + 1 agent ({f['slots']} slots) vs xargs -P{f['slots']}; {f['jobs']} jobs per batch of "
             f"{f['calibration']['content_s']} s content (about {result['profile']['job_s']:g} s each)",
             harness.load_line(result["machine"], "ratios share its noise"), "",
             ROW.format("pair (first)", "farm j/s", "xargs j/s", "ratio", "slot util", "gap ms")]
    for p in f["pairs"]:
        farm = p["farm"]
        lines.append(ROW.format(f"pair {p['pair']} ({p['first']} first)", farm["jobs_per_s"],
                                p["xargs"]["jobs_per_s"], f"{p['ratio']:.4f}", farm["slot_utilisation"],
                                farm["gap_ms"]["median"]))
        steps = farm["steps"]
        lines.append("  farm steps median ms: " + ", ".join(f"{k} {v['median_ms']}" for k, v in steps.items())
                     + f"; window util {farm['window_utilisation']}, whole-wall util "
                     f"{farm['whole_wall_utilisation']}, FFmpeg mean {farm['ffmpeg_mean_s']} s")
        lines.append("  slot gap median ms: " + ", ".join(
            f"{k.replace('_to_', ' → ')} {v['median_ms']} (max {v['max_ms']})"
            for k, v in farm["gap_steps"].items()))
    lines += ["", f"slot utilisation per batch {s['slot_utilisation']}, "
                  f"median {s['slot_utilisation_median']}",
              f"farm/xargs per pair {s['ratios']}, median {s['ratio_median']}; "
              f"same argv as xargs: {s['argv_identical']}"]
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"])])


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parser(__doc__, SCENARIOS, "2 pairs of 6 one-second jobs").parse_args(argv)
    profile = QUICK if args.quick else FULL
    return harness.execute(lambda log: run(profile, log=log), render, args.out)


if __name__ == "__main__":
    sys.exit(main())
