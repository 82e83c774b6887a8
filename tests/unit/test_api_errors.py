"""Bad input gets a JSON error naming the problem (400/404/405/413/422), never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api, register


def error_of(reply: object) -> dict:
    body = reply.get_json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_non_json_body_is_400(api: Api) -> None:
    reply = api.post("/api/v1/jobs", data="not json", content_type="application/json", expect=400)
    assert "JSON" in error_of(reply)["message"]
    api.post("/api/v1/jobs", data="x=1", content_type="application/x-www-form-urlencoded",
             expect=400)


def test_json_that_is_not_an_object_is_422(api: Api) -> None:
    assert error_of(api.post("/api/v1/jobs", json=[1, 2], expect=422))["details"] == {"field": "body"}


@pytest.mark.parametrize(("body", "field"), [
    ({"input": "testsrc://", "outputs": [{"url": "rtmp://h/a", "preset": "nope"}]}, "outputs[0].preset"),
    ({"input": "testsrc://", "outputs": [{"url": "file:///etc/passwd.mp4", "preset": "copy"}]},
     "outputs[0].url"),
    ({"input": "testsrc://", "outputs": [], "queue": "default"}, "outputs"),
    ({"input": "testsrc://", "outputs": [{"url": "rtmp://h/a", "preset": "h264-480p"}],
      "queue": "urgent"}, "queue"),
    ({"input": "gopher://x", "outputs": [{"url": "rtmp://h/a", "preset": "h264-480p"}]}, "input"),
    ({"input": "testsrc://", "outputs": [{"url": "rtmp://h/a", "preset": "h264-480p"}],
      "bogus": 1}, "bogus"),
])
def test_invalid_job_specs_are_422_naming_the_field(api: Api, body: dict, field: str) -> None:
    err = error_of(api.post("/api/v1/jobs", json=body, expect=422))
    assert err["code"] == "invalid" and err["details"]["field"] == field
    assert api.get("/api/v1/jobs").get_json()["jobs"] == []


def test_path_escaping_the_media_root_is_rejected(api: Api, settings: object) -> None:
    root = settings.media_roots[0]  # type: ignore[attr-defined]
    body = {"input": f"file://{root}/../secret.mp4",
            "outputs": [{"url": f"file://{root}/out.mp4", "preset": "h264-480p"}]}
    err = error_of(api.post("/api/v1/jobs", json=body, expect=422))
    assert err["details"]["field"] == "input"


@pytest.mark.parametrize(("body", "field"), [
    ({"slots": "2"}, "slots"), ({"slots": True}, "slots"), ({"slots": 0}, "slots"),
    ({"slots": 1, "wait_s": -1}, "wait_s"), ({"slots": 1, "extra": 1}, "extra"), ({}, "slots"),
])
def test_agent_bodies_are_validated(api: Api, body: dict, field: str) -> None:
    node_id, node = register(api)
    err = error_of(node.post(f"/api/v1/nodes/{node_id}/claim", json=body, expect=422))
    assert err["details"]["field"] == field


def test_registration_validates_fields(api: Api) -> None:
    from tests.conftest import ENROLL_TOKEN

    enroll = api.as_(ENROLL_TOKEN)
    err = error_of(enroll.post("/api/v1/nodes/register",
                               json={"name": "a b", "slots": 1}, expect=422))
    assert err["details"]["field"] == "name"
    err = error_of(enroll.post("/api/v1/nodes/register",
                               json={"name": "a", "slots": 1, "encoders": ["ok", 5]}, expect=422))
    assert err["details"]["field"] == "encoders[1]"


def test_oversized_body_is_413(api: Api) -> None:
    big = json.dumps({"input": "x" * 2_000_000})
    err = error_of(api.post("/api/v1/jobs", data=big, content_type="application/json", expect=413))
    assert err["code"] == "request_entity_too_large"


def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    assert error_of(api.get("/api/v1/nope", expect=404))["code"] == "not_found"
    assert error_of(api.request("PUT", "/api/v1/jobs", expect=405))["code"] == "method_not_allowed"
    assert error_of(api.get("/api/v1/jobs/j-missing", expect=404))["code"] == "job_not_found"


def test_bad_query_parameters_are_422(api: Api) -> None:
    assert error_of(api.get("/api/v1/jobs?limit=0", expect=422))["details"]["field"] == "limit"
    assert error_of(api.get("/api/v1/jobs?state=nope", expect=422))["details"]["field"] == "state"
    assert error_of(api.get("/api/v1/jobs?sort=x", expect=422))["details"]["field"] == "sort"


def test_cancel_with_a_body_field_is_422(api: Api) -> None:
    api.post("/api/v1/jobs/j-x/cancel", json={"force": True}, expect=422)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
spec_like = st.fixed_dictionaries({}, optional={
    "input": st.one_of(json_values, st.sampled_from(["testsrc://", "/srv/media/a.mp4", "rtmp://h/x"])),
    "outputs": st.one_of(json_values, st.lists(st.dictionaries(
        st.sampled_from(["url", "preset", "video_bitrate", "size", "x"]),
        st.one_of(json_values, st.sampled_from(["rtmp://h/a", "h264-480p", "900k", "640x360"])),
        max_size=4), max_size=3)),
    "queue": json_values, "priority": json_values, "requires": json_values,
    "limits": json_values, "duration_s": json_values, "intent": json_values})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, spec_like))
def test_submit_never_500s_and_never_accepts_an_invalid_spec(api: Api, body: object) -> None:
    from ffrtmp import jobspec

    reply = api.post("/api/v1/jobs", json=body, expect=None)
    assert reply.status_code in (201, 400, 422), (reply.status_code, reply.get_json())
    if reply.status_code == 201:
        jobspec.parse(body, api.client.application.extensions["ffrtmp"].settings.media_roots)
    else:
        error_of(reply)
