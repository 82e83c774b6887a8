"""The worker benchmark's code paths, run with tiny counts so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that every scenario runs real
processes to the end, reports a complete and sane result, and leaves nothing running.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench import harness, worker_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return worker_bench


def test_standard_error_needs_two_samples(bench: ModuleType) -> None:
    assert harness.standard_error([1.0]) is None
    assert harness.standard_error([1.0, 1.0, 1.0]) == 0.0
    assert harness.standard_error([0.9, 1.1], of_median=True) > harness.standard_error([0.9, 1.1]) > 0


def test_tiny_run_reports_every_figure_and_stops_everything(bench: ModuleType, tmp_path: Path) -> None:
    profile = dataclasses.replace(
        bench.QUICK, name="smoke", wrapper_pairs=1, wrapper_encode_s=0.3, fixed_cost_runs=1,
        farm_jobs=3, farm_job_s=0.3, farm_rounds=1, idle_window_s=1.0, idle_sample_s=0.5,
        deadline_s=120.0)
    result = bench.run(profile, log=lambda line: None, workdir=tmp_path)

    assert {"machine", "wrapper", "idle", "farm", "goals"} <= result.keys()
    assert result["machine"]["cpus"] >= 1

    wrapper = result["wrapper"]
    assert len(wrapper["bare_s"]) == len(wrapper["wrapped_s"]) == 1
    assert 0 < wrapper["bare_median_s"] < 60 and 0 < wrapper["wrapped_median_s"] < 60
    assert wrapper["ratio"] > 0 and wrapper["cpu_ratio"] > 0  # a figure, not a timing check
    assert wrapper["fixed_cost"]["wall_ms"] > 0 and wrapper["fixed_cost"]["ratio"] > 1  # Python is never free
    assert wrapper["calibration"]["content_s"] > 0 and len(wrapper["calibration"]["probes"]) == 2
    assert wrapper["imports"]["total_ms"] > 0
    assert "-progress" in wrapper["argv"]
    check_standby(wrapper, result["goals"])

    idle = result["idle"]
    assert idle["samples"] >= 2 and 5 < idle["rss_mb_max"] < 1000 and 0 <= idle["cpu_pct"] < 100

    farm = result["farm"]
    (one,) = farm["rounds"]
    assert farm["jobs"] == 3 and one["xargs"]["wall_s"] > 0 and one["farm"]["wall_s"] > 0
    assert one["xargs"]["job_s"] > 0
    assert 0 < one["ratio"] < 2 and one["cpu_ratio"] > 0
    timing = one["farm"]["timing"]
    assert timing["argv_identical"] is True  # the farm ran exactly the baseline's commands
    assert 0 < timing["slot_utilisation"] <= 1.0
    assert {"confirm", "spawn", "report", "reclaim"} <= timing.keys()
    assert one["farm"]["cpu"]["jobs_cpu_s"] > 0

    assert set(result["goals"]) == set(bench.GOALS)
    assert all(isinstance(g["met"], bool) and isinstance(g["conclusive"], bool)
               for g in result["goals"].values())
    assert not harness.LIVE  # every process the benchmark started was stopped
    report = bench.render(result)
    assert "cold wrapper run vs bare ffmpeg" in report and "standby (the agent's path)" in report
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["goals"] == result["goals"]


def check_standby(wrapper: dict[str, Any], goals: dict[str, Any]) -> None:
    """The agent's path, a started wrapper handed its call: measured, and the one judged."""
    standby = wrapper["standby"]
    assert len(standby["standby_s"]) == len(standby["exit_s"]) == len(standby["pair_ratios"]) == 1
    assert 0 < standby["standby_median_s"] <= standby["exit_median_s"] < 60
    assert standby["ratio"] > 0 and standby["cpu_ratio"] > 0  # a figure, not a timing check
    standby_fixed = standby["fixed_cost"]
    assert len(standby_fixed["standby_s"]) == len(standby_fixed["bare_s"]) == 1
    assert standby_fixed["exit_wall_ms"] >= standby_fixed["wall_ms"]
    assert set(wrapper["cold_goals"]) == {"wrapper_overhead_ratio", "wrapper_fixed_cost_ms"}
    assert goals["wrapper_fixed_cost_ms"]["measured"] == standby_fixed["wall_ms"]  # standby judged
    assert goals["wrapper_overhead_ratio"]["measured"] == standby["ratio"]
