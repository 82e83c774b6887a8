"""The master's probes: /health touches nothing, /ready asks the database and the shutdown flag."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


def test_ready_with_a_database_that_answers(api: Api) -> None:
    body = api.get("/ready").get_json()
    assert body["status"] == "ready" and body["checks"] == {"database": "ok", "database_writes": "ok",
                                                         "shutdown": "running"}
    assert body["timestamp"].endswith("Z")


def test_ready_is_503_while_shutting_down(api: Api, app: Any) -> None:
    app.extensions["ffrtmp"].shutdown.request("SIGTERM")
    body = api.get("/ready", expect=503).get_json()
    assert body["status"] == "not_ready" and body["checks"]["shutdown"] == "shutting_down"
    assert api.get("/health").get_json()["status"] == "healthy"


def test_ready_is_503_when_the_database_fails_and_health_stays_200(
        api: Api, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(app.extensions["ffrtmp"].store, "ping", broken)
    body = api.get("/ready", expect=503).get_json()
    assert body["checks"]["database"] == "error: disk I/O error"
    assert api.get("/health").status_code == 200


def test_metrics_count_jobs_and_nodes_from_the_store(api: Api) -> None:
    from tests.conftest import register

    for _ in range(3):
        api.post("/api/v1/jobs", json={"input": "testsrc://", "outputs": [
            {"url": "rtmp://127.0.0.1/live/m", "preset": "h264-480p"}]}, expect=201)
    node_id, _ = register(api)
    api.post(f"/api/v1/nodes/{node_id}/drain")
    text = api.get("/metrics").get_data(as_text=True)
    assert "ffrtmp_jobs_pending 3.0" in text
    assert 'ffrtmp_jobs_by_state{state="queued"} 3.0' in text
    assert "ffrtmp_nodes_offline 0.0" in text
    assert 'ffrtmp_nodes_by_status{status="draining"} 1.0' in text
    assert 'ffrtmp_http_requests_total{method="POST",route="/api/v1/jobs",status="201"} 3.0' in text
    assert 'route="/api/v1/nodes/<noderef:ref>/drain"' in text and node_id not in text


def test_duration_histograms_are_cumulative_across_jobs(app: Any) -> None:
    import time as clock

    from ffrtmp.master.metrics import StoreCollector

    store = app.extensions["ffrtmp"].store
    node, _, _ = store.register_node(name="h", slots=8, encoders=["libx264", "aac"], hwaccels=[],
                                     labels={}, ffmpeg_version="", agent_version="", live_s=30)
    t0 = clock.time()
    for wait_s, run_s in ((2, 8), (40, 3), (2, 700)):
        job = store.submit_job({"input": "testsrc://", "outputs": []}, queue="default",
                               priority="medium", capabilities=[], intent=None, now=t0)
        [a] = [x for x in store.claim(node["id"], 1, lease_s=30, now=t0 + wait_s) if x.job_id == job["id"]]
        store.start(job["id"], node["id"], a.attempt_token, now=t0 + wait_s)
        store.record_result(job["id"], node["id"], a.attempt_token, {"outcome": "succeeded"},
                            now=t0 + wait_s + run_s)
    families = {f.name: f for f in StoreCollector(store).collect()}
    run = {s.labels.get("le"): s.value for s in families["ffrtmp_job_run_seconds"].samples
           if s.name.endswith("_bucket")}
    assert (run["5"], run["15"], run["600"], run["1800"], run["+Inf"]) == (1, 2, 2, 3, 3)
    wait = {s.labels.get("le"): s.value for s in families["ffrtmp_job_queue_wait_seconds"].samples
            if s.name.endswith("_bucket")}
    assert (wait["1"], wait["5"], wait["30"], wait["60"], wait["+Inf"]) == (0, 2, 2, 3, 3)
    sums = {s.name: s.value for s in families["ffrtmp_job_run_seconds"].samples}
    assert sums["ffrtmp_job_run_seconds_count"] == 3 and sums["ffrtmp_job_run_seconds_sum"] == 711


def test_agent_disk_check_covers_the_media_roots(tmp_path: Any) -> None:
    from ffrtmp.agent.probes import Readiness

    work, media = tmp_path / "work", tmp_path / "media"
    work.mkdir()
    media.mkdir()
    readiness = Readiness(str(work), media_roots=(str(media), str(tmp_path / "not-yet")))
    assert readiness._written_filesystems() == [str(work)]  # one filesystem, counted once
    ok, text, _ = readiness.disk()
    assert ok and text.startswith("ok: ")
    missing = Readiness(str(tmp_path / "no-work-dir"), media_roots=(str(media),))
    with pytest.raises(FileNotFoundError):
        missing.disk()
    proc = Readiness(str(work), media_roots=("/proc",))  # another filesystem: checked too
    assert proc._written_filesystems() == [str(work), "/proc"]
