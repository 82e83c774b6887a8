"""A result's delivered outputs, and what of a job's URLs an operator is shown.

The real Flask app on a real SQLite store. The schema is the media plane's: every delivered
output names its URL, byte count and SHA-256, and, for media, the duration and video size
ffprobe reported. The views show every spec URL redacted; the agent's claim gets it exact.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api, register

SHA = "3f2a9c1b" + "0" * 56
OUTPUT = {"url": "store:///out/a-720p.mp4", "bytes": 12_300_000, "sha256": SHA,
          "duration_s": 10.0, "size": "1280x720"}
SPEC = {"input": "testsrc://?duration=2&size=320x240&rate=25",
        "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}]}
SECRET = "sekrit-signature"
PRESIGNED = {"input": f"https://bucket.example/in/a.mp4?X-Amz-Signature={SECRET}&X-Amz-Expires=600",
             "outputs": [{"url": f"rtmp://127.0.0.1/live/x?key={SECRET}", "preset": "h264-480p"},
                         {"url": f"rtmp://user:{SECRET}@127.0.0.1/live/y", "preset": "h264-480p"}]}


def running_job(api: Api, spec: dict[str, Any] | None = None) -> tuple[str, Api, dict[str, Any]]:
    job_id = api.post("/api/v1/jobs", json=spec or SPEC, expect=201).get_json()["job"]["id"]
    node_id, node = register(api)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    return job_id, node, a


def report(node: Api, job_id: str, a: dict[str, Any], expect: int = 200, **fields: Any) -> Any:
    body = {"attempt_token": a["attempt_token"], "outcome": "succeeded", "exit_code": 0, **fields}
    return node.post(f"/api/v1/jobs/{job_id}/result", json=body, expect=expect).get_json()


# --- the result's outputs ---


def test_delivered_outputs_are_stored_whole_and_shown_on_the_attempt(api: Api) -> None:
    job_id, node, a = running_job(api)
    hls = {"url": "store:///out/hls/index.m3u8", "bytes": 412, "sha256": "ab" * 32,
           "duration_s": 9.96, "size": "640x360"}
    audio = {"url": "https://store.example/out/a.mkv", "bytes": 0, "sha256": "0" * 64,
             "duration_s": None, "size": None}
    odd = {"url": "https://u:REDACTED@store.example/" + "x" * 2020 + "?REDACTED", "bytes": 1,
           "sha256": SHA, "duration_s": 0, "size": "0x0"}  # a 2048-character spec URL, redacted
    assert report(node, job_id, a, outputs=[OUTPUT, hls, audio, odd])["state"] == "succeeded"
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["attempts"][0]["result"]["outputs"] == [OUTPUT, hls, audio, {**odd, "duration_s": 0.0}]
    again = report(node, job_id, a, outputs=[OUTPUT, hls, audio, odd])  # a redelivered result is the same
    assert again == {"job_id": job_id, "attempt": 1, "state": "succeeded"}


def test_duration_and_size_may_be_left_out_and_are_stored_as_null(api: Api) -> None:
    job_id, node, a = running_job(api)
    report(node, job_id, a, outputs=[{"url": "store:///out/a.mp4", "bytes": 5, "sha256": SHA}])
    [stored] = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["attempts"][0]["result"]["outputs"]
    assert stored == {"url": "store:///out/a.mp4", "bytes": 5, "sha256": SHA,
                      "duration_s": None, "size": None}


def test_a_failed_job_reports_no_outputs(api: Api) -> None:
    job_id, node, a = running_job(api)
    report(node, job_id, a, outcome="failed", exit_code=None, platform_sla=False, outputs=[],
           reason="output_refused: PUT https://store.example/out/a.mp4 -> 403 Forbidden")
    result = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["attempts"][0]["result"]
    assert result["outputs"] == [] and result["platform_sla"] is False


def test_an_hls_ladder_of_64_outputs_is_accepted_and_65_are_not(api: Api) -> None:
    job_id, node, a = running_job(api)
    many = [{**OUTPUT, "url": f"store:///out/{i}.mp4"} for i in range(65)]
    err = report(node, job_id, a, 422, outputs=many)["error"]
    assert err["details"] == {"field": "outputs"} and "64" in err["message"]
    report(node, job_id, a, outputs=many[:64])


@pytest.mark.parametrize(("item", "field"), [
    ({**OUTPUT, "sha256": SHA.upper()}, "outputs[0].sha256"),
    ({**OUTPUT, "sha256": SHA[:63]}, "outputs[0].sha256"),
    ({**OUTPUT, "sha256": None}, "outputs[0].sha256"),
    ({**OUTPUT, "sha256": 7}, "outputs[0].sha256"),
    ({**OUTPUT, "bytes": -1}, "outputs[0].bytes"),
    ({**OUTPUT, "bytes": True}, "outputs[0].bytes"),
    ({**OUTPUT, "bytes": "12"}, "outputs[0].bytes"),
    ({**OUTPUT, "bytes": 1.5}, "outputs[0].bytes"),
    ({k: v for k, v in OUTPUT.items() if k != "bytes"}, "outputs[0].bytes"),
    ({**OUTPUT, "duration_s": -0.5}, "outputs[0].duration_s"),
    ({**OUTPUT, "duration_s": "10"}, "outputs[0].duration_s"),
    ({**OUTPUT, "size": "1280*720"}, "outputs[0].size"),
    ({**OUTPUT, "size": "1234567x720"}, "outputs[0].size"),
    ({**OUTPUT, "size": "1280x720\n"}, "outputs[0].size"),
    ({**OUTPUT, "size": [1280, 720]}, "outputs[0].size"),
    ({**OUTPUT, "url": "x" * 2065}, "outputs[0].url"),
    ({**OUTPUT, "url": ""}, "outputs[0].url"),
    ({**OUTPUT, "url": "store:///a\nb.mp4"}, "outputs[0].url"),
    ({k: v for k, v in OUTPUT.items() if k != "url"}, "outputs[0].url"),
    ({**OUTPUT, "path": "/srv/media/a.mp4"}, "outputs[0].path"),
    ("store:///out/a.mp4", "outputs[0]"),
])
def test_a_bad_output_is_422_naming_its_field(api: Api, item: Any, field: str) -> None:
    job_id, node, a = running_job(api)
    err = report(node, job_id, a, 422, outputs=[item])["error"]
    assert err["code"] == "invalid" and err["details"] == {"field": field}, err
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "running"


def test_outputs_that_are_not_a_list_are_422(api: Api) -> None:
    job_id, node, a = running_job(api)
    assert report(node, job_id, a, 422, outputs={"url": "x"})["error"]["details"] == {"field": "outputs"}


# --- redaction in the operator's views ---


def all_views(api: Api, job_id: str) -> list[str]:
    """Every operator route that returns something of the job, as the bytes it sends."""
    return [api.get(path).get_data(as_text=True) for path in (
        f"/api/v1/jobs/{job_id}", "/api/v1/jobs", f"/api/v1/jobs/{job_id}/logs")]


def test_views_redact_presigned_and_password_urls_and_the_claim_keeps_them_exact(api: Api) -> None:
    submitted = api.post("/api/v1/jobs", json=PRESIGNED, expect=201).get_data(as_text=True)
    job_id = json.loads(submitted)["job"]["id"]
    assert SECRET not in submitted
    for view in all_views(api, job_id):
        assert SECRET not in view, view
    spec = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["spec"]
    assert spec["input"] == "https://bucket.example/in/a.mp4?REDACTED"
    assert [o["url"] for o in spec["outputs"]] == ["rtmp://127.0.0.1/live/x?REDACTED",
                                                   "rtmp://user:REDACTED@127.0.0.1/live/y"]
    node_id, node = register(api)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    assert a["spec"]["input"] == PRESIGNED["input"]
    assert [o["url"] for o in a["spec"]["outputs"]] == [o["url"] for o in PRESIGNED["outputs"]]


def test_results_reasons_and_logs_are_redacted_in_the_views(api: Api) -> None:
    job_id, node, a = running_job(api, PRESIGNED)
    report(node, job_id, a, outcome="failed", exit_code=1,
           reason=f"output_refused: PUT https://s.example/o.mp4?sig={SECRET} -> 403 Forbidden",
           outputs=[{**OUTPUT, "url": f"https://s.example/a.mp4?X-Amz-Signature={SECRET}"}],
           log_tail=f"Output #0, flv, to 'rtmp://127.0.0.1/live/x?key={SECRET}':\n")
    for view in all_views(api, job_id):
        assert SECRET not in view, view
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    result = job["attempts"][0]["result"]
    assert result["outputs"][0]["url"] == "https://s.example/a.mp4?REDACTED"
    assert result["reason"] == "output_refused: PUT https://s.example/o.mp4?REDACTED -> 403 Forbidden"
    assert job["history"][-1]["reason"] == result["reason"]


def test_cancel_and_retry_answer_with_redacted_views_and_the_retry_claims_the_exact_spec(api: Api) -> None:
    job_id, node, a = running_job(api, PRESIGNED)
    assert SECRET not in api.post(f"/api/v1/jobs/{job_id}/cancel").get_data(as_text=True)
    report(node, job_id, a, outcome="canceled", exit_code=None, signal="SIGTERM")
    assert SECRET not in api.post(f"/api/v1/jobs/{job_id}/retry").get_data(as_text=True)
    node_id = api.get("/api/v1/nodes").get_json()["nodes"][0]["id"]
    [b] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    assert b["attempt"] == 2 and b["spec"]["input"] == PRESIGNED["input"]
    assert b["spec"]["outputs"][0]["url"] == PRESIGNED["outputs"][0]["url"]


def test_local_urls_and_test_patterns_are_shown_as_given(api: Api) -> None:
    job_id = api.post("/api/v1/jobs", json=SPEC, expect=201).get_json()["job"]["id"]
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["spec"]["input"] == SPEC["input"]


def test_presigned_upload_and_store_outputs_are_redacted_and_claimed_exact(api: Api) -> None:
    put = f"https://bucket.example/out/a.mp4?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}"
    spec = {"input": "store:///in/a.mp4", "outputs": [{"url": put, "preset": "h264-480p"},
                                                     {"url": "store:///out/a.mp4", "preset": "copy"}]}
    job_id = api.post("/api/v1/jobs", json=spec, expect=201).get_json()["job"]["id"]
    for view in all_views(api, job_id):
        assert SECRET not in view and "AKIA" not in view, view
    shown = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["spec"]
    assert (shown["input"], [o["url"] for o in shown["outputs"]]) == (
        "store:///in/a.mp4", ["https://bucket.example/out/a.mp4?REDACTED", "store:///out/a.mp4"])
    node_id, node = register(api)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    assert [o["url"] for o in a["spec"]["outputs"]] == [put, "store:///out/a.mp4"]
