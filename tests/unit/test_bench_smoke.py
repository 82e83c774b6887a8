"""The master benchmark's code paths, run with tiny counts so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that every scenario runs
against a real master, finishes, stops the master, and reports sane, complete results.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType

import pytest
from bench import harness, master_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return master_bench


def test_summarize_uses_nearest_rank(bench: ModuleType) -> None:
    stats = harness.summarize([i / 1000 for i in range(1, 101)])
    assert (stats["count"], stats["p50_ms"], stats["p99_ms"], stats["max_ms"]) == (100, 50.0, 99.0, 100.0)
    assert harness.summarize([])["count"] == 0


def test_tiny_run_reports_every_figure_and_stops_its_masters(bench: ModuleType, tmp_path: Path) -> None:
    profile = dataclasses.replace(
        bench.QUICK, name="smoke", latency_agents=2, latency_jobs=3, latency_gap_s=(0.0, 0.01),
        latency_wait_s=5.0, idle_window_s=0.2, dispatch_jobs=12, dispatch_agents=(2,),
        health_window_s=0.3, heartbeat_nodes=6, heartbeat_rate=20.0, heartbeat_window_s=0.5,
        heartbeat_threads=2, register_threads=2, probe_commits=20, deadline_s=60.0)
    result = bench.run(profile, log=lambda line: None, workdir=tmp_path)

    assert {"machine", "claim_latency", "dispatch", "heartbeat", "goals"} <= result.keys()
    assert result["machine"]["cpus"] >= 1 and result["machine"]["fsync_ms"] > 0

    latency = result["claim_latency"]
    assert latency["jobs"] == 3 and latency["latency"]["count"] == 3
    assert 0 <= latency["latency"]["p50_ms"] <= latency["latency"]["p99_ms"] <= latency["latency"]["max_ms"]
    assert latency["latency"]["max_ms"] < 5000  # claimed by a waiting poll, not a retry

    (dispatch,) = result["dispatch"]
    assert dispatch["agents"] == 2 and dispatch["jobs"] == 12
    assert dispatch["jobs_per_s"] > 0 and dispatch["submit"]["jobs_per_s"] > 0
    assert dispatch["agent_requests"] == 3 * 12 + 2  # claim, start, result each; one empty claim per agent
    assert dispatch["health"]["requests_per_s"] > 0 and dispatch["vs_health"] > 0
    assert {"claim", "start", "result"} == dispatch["latency"].keys()

    heartbeat = result["heartbeat"]
    assert heartbeat["heartbeats"] == 10 and heartbeat["statuses"] == {"200": 10}
    assert heartbeat["latency"]["p99_ms"] > 0

    assert set(result["goals"]) == set(bench.GOALS)
    assert all(isinstance(g["met"], bool) for g in result["goals"].values())
    assert not harness.LIVE  # every master was stopped
    assert "dispatch, 2 agents" in bench.render(result)
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["goals"] == result["goals"]
