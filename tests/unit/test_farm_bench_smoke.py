"""The slot-utilisation benchmark's code paths, run with one tiny pair of batches.

The figures of such a small run mean nothing; the test checks that a real master and agent
and ``xargs -P2`` run the same argv lists, that the utilisation comes from the wrappers' own
FFmpeg times, and that nothing is left running.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench import farm_bench, harness


def test_slot_spans_count_only_the_gaps_between_encodes_in_a_slot() -> None:
    # in start order, each encode goes to the slot free first: 0-2 then 2.1-4.1, and 0.1-2.1 then 2.5-4.5
    spans = farm_bench.slot_spans([(0.0, 2.0), (0.1, 2.1), (2.5, 4.5), (2.1, 4.1)], slots=2)
    assert spans["jobs_per_slot"] == [2, 2]
    assert spans["slot_utilisation"] == round(8.0 / (4.1 + 4.4), 4)
    assert spans["gap_ms"] == {"median": 250.0, "max": 400.0, "count": 2}
    assert spans["window_utilisation"] == round(8.0 / (2 * 4.5), 4)


def test_slot_gaps_split_each_gap_by_the_master_and_wrapper_clocks() -> None:
    # one slot: encode 0-2, then the next assigned at 2.05, started at 2.07, FFmpeg at 2.1
    steps = [{"assigned": -0.1, "started": -0.05, "ffmpeg_start": 0.0, "ffmpeg_end": 2.0},
             {"assigned": 2.05, "started": 2.07, "ffmpeg_start": 2.1, "ffmpeg_end": 4.0}]
    gaps = farm_bench.slot_gaps(steps, slots=1)
    assert {k: v["median_ms"] for k, v in gaps.items()} == {
        "exit_to_assigned": 50.0, "assigned_to_started": 20.0, "started_to_ffmpeg": 30.0}


def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    profile = dataclasses.replace(farm_bench.QUICK, name="smoke", jobs=3, job_s=0.3, pairs=1,
                                  deadline_s=120.0)
    result = farm_bench.run(profile, log=lambda line: None, workdir=tmp_path)

    (pair,) = result["farm"]["pairs"]
    farm, xargs = pair["farm"], pair["xargs"]
    assert pair["first"] == "xargs" and xargs["wall_s"] > 0 and farm["wall_s"] > 0 and pair["ratio"] > 0
    assert farm["argv_identical"] is True  # the farm ran exactly the baseline's commands
    assert 0 < farm["slot_utilisation"] <= 1.0 and 0 < farm["window_utilisation"] <= 1.0
    assert sum(farm["jobs_per_slot"]) == 3 and farm["ffmpeg_mean_s"] > 0
    assert set(result["goals"]) == set(farm_bench.GOALS)
    assert not harness.LIVE  # every process the benchmark started was stopped
    assert "slot utilisation per batch" in farm_bench.render(result)
    assert set(farm["gap_steps"]) == {"exit_to_assigned", "assigned_to_started", "started_to_ffmpeg"}
    assert "slot gap median ms" in farm_bench.render(result)
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["goals"] == result["goals"]
