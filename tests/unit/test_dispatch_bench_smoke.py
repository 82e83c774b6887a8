"""The dispatch benchmark's code paths, run with tiny counts so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that ffrtmp's round runs against
a real master with simulated agents, that each Celery variant runs against its own Redis and
worker (where ``tools/bootstrap.sh --bench`` installed them), that every process is stopped, and that
the result is complete and sane.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from bench import celery_baseline, dispatch_bench, harness

TINY = dataclasses.replace(dispatch_bench.QUICK, name="smoke", jobs=12, rounds=1, submitters=2, agents=2,
                           slots=2, claim_wait_s=0.5, warmup=2, round_timeout_s=60.0, deadline_s=120.0)
WHY_NO_CELERY = celery_baseline.missing()


def check_ffrtmp(figures: dict) -> None:
    assert figures["jobs"] == 12 and figures["jobs_per_s"] > 0 and figures["wall_s"] > 0
    assert figures["routes"].startswith(("batch", "per job"))
    assert {"claim", "start", "result"} == figures["latency"].keys()
    assert figures["latency"]["claim"]["count"] >= 1 and figures["agent_requests"] >= 3
    assert "fsync" in figures["durability"]


def test_rounds_rotate_which_system_goes_first() -> None:
    assert [dispatch_bench.order(dispatch_bench.SYSTEMS, n)[0] for n in (1, 2, 3, 4)] == [
        "ffrtmp", "celery-default", "celery-fsync", "ffrtmp"]


def test_tiny_ffrtmp_round_reports_its_figures(tmp_path: Path) -> None:
    result = dispatch_bench.run(TINY, systems=("ffrtmp",), log=lambda line: None, workdir=tmp_path)
    (one,) = result["rounds"]
    check_ffrtmp(one["ffrtmp"])
    assert one["ratios"] == {} and result["summary"]["ffrtmp_median_jobs_per_s"] > 0
    assert set(result["goals"]) == {"e2e_dispatch_jobs_per_s"}
    assert not harness.LIVE  # the master was stopped
    assert "ffrtmp agents' routes" in dispatch_bench.render(result)


@pytest.mark.skipif(WHY_NO_CELERY is not None, reason=f"Celery baseline: {WHY_NO_CELERY}")
def test_tiny_run_against_both_celery_variants(tmp_path: Path) -> None:
    result = dispatch_bench.run(TINY, log=lambda line: None, workdir=tmp_path)
    (one,) = result["rounds"]
    check_ffrtmp(one["ffrtmp"])
    default, fsync = one["celery-default"], one["celery-fsync"]
    assert default["jobs"] == fsync["jobs"] == 12 and default["jobs_per_s"] > 0 and fsync["jobs_per_s"] > 0
    assert default["redis_config"]["appendonly"] == "no"  # what Redis itself reported
    assert fsync["redis_config"] == {**fsync["redis_config"], "appendonly": "yes", "appendfsync": "always"}
    assert set(one["ratios"]) == {"vs_celery_default", "vs_celery_fsync"}
    assert set(result["goals"]) == set(dispatch_bench.GOALS)
    assert all(isinstance(g["met"], bool) for g in result["goals"].values())
    assert result["machine"]["celery"].startswith("5.")
    assert not harness.LIVE  # master, both Redis servers and both workers were stopped
    text = dispatch_bench.render(result)
    assert "ffrtmp / celery-fsync per round" in text and "appendfsync always" in text
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["summary"] == result["summary"]
