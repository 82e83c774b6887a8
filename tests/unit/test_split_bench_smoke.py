"""The split benchmark's code paths, run on a tiny source so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that a real master and two
pinned agents run the split and the unsplit job to the end, that segments ran on both agents
and every workload they started inherited its agent's core, that the result is complete and
sane, and that nothing is left running or left in the media root.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from bench import harness, split_bench

TINY_LADDER = ({"name": "a.mp4", "preset": "h264-360p", "size": "320x240"},
               {"name": "b.mp4", "preset": "h264-360p", "size": "160x120"})
pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pins two agents to two cores")


def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    cores = tuple(sorted(os.sched_getaffinity(0))[:2])
    profile = dataclasses.replace(split_bench.QUICK, name="smoke", duration_s=8, size="320x240", segment_s=2,
                                  rounds=1, deadline_s=300.0, cores=cores, ladder=TINY_LADDER)
    result = split_bench.run(profile, log=lambda line: None, workdir=tmp_path / "run",
                             cache=tmp_path / "cache")

    assert {"machine", "source", "rounds", "affinity", "summary", "goals"} <= result.keys()
    (one,) = result["rounds"]
    split, unsplit = one["split"], one["unsplit"]
    assert split["wall_s"] > 0 and unsplit["wall_s"] > 0 and one["ratio"] > 0
    assert split["outputs"] == unsplit["outputs"]  # same frames per rung, split or not
    assert all(n == result["source"]["video_frames"] for n in split["outputs"].values())
    assert split["left_in_media"] == [] == unsplit["left_in_media"]
    steps = [k["step"] for k in split["children"]]
    assert steps[0] == "plan" and steps.count("segment") >= 2 and steps.count("audio") == 1
    assert steps.count("stitch") == 1 and all(k["state"] == "succeeded" for k in split["children"])
    assert all(cpu > 0 for cpu in split["cpu_s"].values()) and sum(unsplit["cpu_s"].values()) > 0
    assert sum(split["phases"].values()) == pytest.approx(split["wall_s"], abs=0.01)

    summary = result["summary"]
    assert summary["segment_nodes"] == [f"node{c}" for c in cores]  # the segments ran on both
    fixed = summary["fixed"]
    assert fixed["segments"] >= 2 and fixed["t_seg_s"] > 0 and fixed["c_seg_s"] > 0
    assert fixed["plan_s"] > 0 and fixed["audio_s"] > 0 and fixed["stitch_s"] > 0
    assert fixed["seam_alignment"]["first_frame_at_0_s"] > 0
    cpu = summary["cpu"]
    assert cpu["work_ratio"] > 0 and 0 < cpu["cpu_bound_ratio"] <= cpu["work_ratio"]
    assert set(summary["model"]) == {"1", "2", "4", "8", "16"}

    for core, name in zip(cores, (f"node{c}" for c in cores), strict=True):
        seen = result["affinity"][name]
        assert seen["agent"] == [str(core)] and seen["ffmpeg"] == [str(core)]  # inherited
        assert seen.get("wrapper", [str(core)]) == [str(core)]
    assert set(result["goals"]) == set(split_bench.GOALS)
    assert not harness.LIVE  # every process the benchmark started was stopped
    assert "split/unsplit" in split_bench.render(result)
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["summary"] == result["summary"]
