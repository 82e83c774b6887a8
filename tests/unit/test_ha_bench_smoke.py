"""The several-masters benchmark's code paths, run with tiny counts so the script cannot rot unnoticed.

The figures of such a small run mean nothing (no timing is asserted); the test checks that
both setups start (one master on SQLite, two on a throwaway PostgreSQL), that every scenario
sends the requests it scheduled and gets real answers, that the report and the JSON hold
every figure, and that every master is stopped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench import ha_bench, harness


def test_tiny_run_reports_both_setups_and_stops_every_master(tmp_path: Path) -> None:
    profile = dataclasses.replace(
        ha_bench.QUICK, name="smoke", claim_agents=2, claim_window_s=0.3, heartbeat_nodes=4,
        heartbeat_rate=20.0, heartbeat_window_s=0.5, ramp=(4, 8), agent_interval_s=1.0,
        ramp_window_s=1.0, client_threads=2, register_threads=2, deadline_s=240.0)
    result = ha_bench.run(profile, log=lambda line: None, workdir=tmp_path)

    assert list(result["setups"]) == ["sqlite", "postgres-2"]
    for name, masters in (("sqlite", 1), ("postgres-2", 2)):
        setup = result["setups"][name]
        assert setup["masters"] == masters
        claims = setup["claims"]
        assert claims["agents"] == 2 and claims["claims_per_s"] > 0
        assert set(claims["statuses"]) == {"200"} and claims["latency"]["count"] > 0
        beats = setup["heartbeat"]
        assert beats["requests"] == 10 and beats["statuses"] == {"200": 10}
        assert beats["heartbeat"]["count"] == 10 and beats["claim"]["count"] == 0
        first = setup["ramp"]["steps"][0]
        # 4 agents, one heartbeat and one claim each in the 1 s window
        assert first["agents"] == 4 and first["heartbeat"]["count"] == 4 and first["claim"]["count"] == 4
        assert first["statuses"] == {"200": 8}
        assert setup["ramp"]["held_agents"] in (0, 4, 8)

    assert set(result["ratios"]) == set(ha_bench.RATIO_FIGURES)
    assert set(result["goals"]) == set(ha_bench.GOALS)
    assert not harness.LIVE  # every master was stopped
    report = ha_bench.render(result)
    assert "claims_per_s" in report and "postgres-2: agents at a 1 s heartbeat — held" in report
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["ratios"] == result["ratios"]
