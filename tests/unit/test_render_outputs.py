"""``ffrtmp jobs show``: the outputs an attempt delivered, its failure reason, and no credential.

The jobs come from the real Flask app on a real SQLite store, as ``jobs show`` gets them; one
test renders a hand-made job, as an older master (one that did not redact) would send it.
"""

from __future__ import annotations

from typing import Any

from ffrtmp.cli import render
from tests.conftest import Api
from tests.unit.test_api_outputs import OUTPUT, PRESIGNED, SECRET, SHA, report, running_job


def shown(api: Api, job_id: str) -> str:
    text: str = render.job_detail(api.get(f"/api/v1/jobs/{job_id}").get_json()["job"])
    return text


def test_show_prints_every_delivered_output(api: Api) -> None:
    job_id, node, a = running_job(api)
    hls = {"url": "store:///out/hls/index.m3u8", "bytes": 412, "sha256": "ab" * 32,
           "duration_s": 9.96, "size": "640x360"}
    audio = {"url": "store:///out/a.mka", "bytes": 2_500_000_000, "sha256": "0" * 64,
             "duration_s": None, "size": None}
    report(node, job_id, a, outputs=[OUTPUT, hls, audio])
    lines = shown(api, job_id).splitlines()
    assert [line for line in lines if line.startswith("  delivered")] == [
        f"  delivered store:///out/a-720p.mp4  12.3 MB  sha256 {SHA[:8]}…  10.0 s  1280x720",
        "  delivered store:///out/hls/index.m3u8  412 B  sha256 abababab…  10.0 s  640x360",
        "  delivered store:///out/a.mka  2.5 GB  sha256 00000000…  -  -"]
    assert lines.index("  delivered store:///out/hls/index.m3u8  412 B  sha256 abababab…  10.0 s  "
                       "640x360") < lines.index("  history:")


def test_show_prints_the_latest_attempt_that_delivered(api: Api) -> None:
    job_id, node, a = running_job(api)
    report(node, job_id, a, outcome="canceled", exit_code=None, outputs=[OUTPUT])
    api.post(f"/api/v1/jobs/{job_id}/retry")
    node_id = api.get("/api/v1/nodes").get_json()["nodes"][0]["id"]
    [b] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": b["attempt_token"]})
    report(node, job_id, b, outputs=[{**OUTPUT, "url": "store:///out/b.mp4"}])
    delivered = [line for line in shown(api, job_id).splitlines() if "delivered" in line]
    assert len(delivered) == 1 and "store:///out/b.mp4" in delivered[0]


def test_a_job_without_delivered_outputs_prints_none(api: Api) -> None:
    job_id, node, a = running_job(api)
    assert "delivered" not in shown(api, job_id)
    report(node, job_id, a)
    assert "delivered" not in shown(api, job_id)


def test_a_failure_reason_is_shown_in_the_outcome_and_the_history(api: Api) -> None:
    job_id, node, a = running_job(api)
    reason = "output_refused: PUT https://store.example/out/a.mp4 -> 403 Forbidden"
    report(node, job_id, a, outcome="failed", exit_code=None, platform_sla=False, reason=reason,
           runtime_s=3.25)
    text = shown(api, job_id)
    assert text.startswith(f"job {job_id}: failed\n")
    lines = text.splitlines()
    node_id = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["node_id"]
    assert (f"  outcome   failed: exit -, platform SLA FAILED, runtime 3.2 s (attempt 1 on node-a "
            f"({node_id}))") in lines
    assert f"  reason    {reason}" in lines
    assert text.count(reason) == 2 and lines[-1].endswith(reason)  # and once in the history


def test_a_failure_reason_missing_from_the_history_gets_its_own_line() -> None:
    job = {**_job(), "state": "failed",
           "attempts": [{"attempt": 1, "result": {"outcome": "failed", "reason": "input_refused: "
                                                  "GET https://s.example/in.mp4?sig=x -> 404 Not Found",
                                                  "outputs": []}}]}
    assert ("  reason    input_refused: GET https://s.example/in.mp4?REDACTED -> 404 Not Found"
            in render.job_detail(job).splitlines())


def test_show_prints_no_credential_even_when_the_master_sent_them(api: Api) -> None:
    job_id, node, a = running_job(api, PRESIGNED)
    report(node, job_id, a, outputs=[{**OUTPUT, "url": f"https://s.example/a.mp4?X-Amz-Signature={SECRET}"}])
    assert SECRET not in shown(api, job_id)
    raw = {**_job(), "spec": PRESIGNED,
           "attempts": [{"attempt": 1, "result": {"outcome": "succeeded", "reason": "done", "outputs": [
               {**OUTPUT, "url": f"https://s.example/a.mp4?X-Amz-Signature={SECRET}"}]}}],
           "history": [{"at": "2026-01-01T00:00:00.000Z", "from": "running", "to": "failed",
                        "attempt": 1, "reason": f"GET https://s.example/x?sig={SECRET} -> 500"}]}
    text = render.job_detail(raw)
    assert SECRET not in text
    assert "  input     https://bucket.example/in/a.mp4?REDACTED" in text.splitlines()
    assert "  delivered https://s.example/a.mp4?REDACTED  12.3 MB" in text


def _job() -> dict[str, Any]:
    return {"id": "j-1", "state": "succeeded", "cancel_requested": False, "spec": {
        "input": "testsrc://?duration=1", "outputs": [{"url": "store:///out/a.mp4", "preset": "copy"}]},
        "queue": "default", "priority": "medium", "node_id": "n-1", "progress": None,
        "attempts": [], "history": []}
