"""The queue-depth benchmark's code paths, run at tiny depths so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that the store is filled
in-process with what the master then reports, that idle agents claim every probe job, that
claims are timed inside their write transaction, that finished jobs are added and counted, and
that every master is stopped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench import depth_bench, depth_store, harness


def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    profile = dataclasses.replace(depth_bench.QUICK, name="smoke", depths=(0, 20), jobs=3, gap_s=(0.0, 0.01),
                                  wait_s=5.0, tx_claims=3, finished=500, scrapes=2, deadline_s=120.0)
    result = depth_bench.run(profile, log=lambda line: None, workdir=tmp_path)

    shallow, deep = result["depths"]
    assert (shallow["queued_seen"], deep["queued_seen"]) == (0, 20)  # the master saw the filled queue
    for d in (shallow, deep):
        assert d["jobs"] == 3 and d["latency"]["count"] == 3 and d["server_errors"] == 0
        assert d["statuses"]["201"] == 3 and d["metrics"]["count"] == 2
    tx = result["transaction"]
    assert tx["write_tx"]["count"] >= 2 * 3  # the runnable and the deep-set claims each wrote once
    assert tx["claim_nothing_runnable"]["count"] == 3
    assert result["metrics_full"]["finished"] == 500 and result["metrics_full"]["count"] == 2

    assert set(result["goals"]) == {"claim_p99_ms_depth_0", "http_5xx", "claim_tx_worst_ms",
                                    "metrics_scrape_ms"}
    assert not harness.LIVE  # every master was stopped
    assert "claim's write transaction" in depth_bench.render(result)
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["goals"] == result["goals"]


def test_finished_copies_are_counted_as_the_store_counts_them(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "out").mkdir(parents=True)
    store = depth_store.TimedStore(str(tmp_path / "master.db"))
    store.migrate()
    depth_store.fill_queued(store, media, 10)
    depth_store.fill_finished(store, media, 50)
    jobs = store.counts()["jobs"]
    assert jobs["queued"] == 10 and jobs["succeeded"] == 51  # the template and its copies
    listed, _ = store.list_jobs(states=["succeeded"], limit=100)
    assert len(listed) == 51 and all(j["state"] == "succeeded" for j in listed)
    store.close()
