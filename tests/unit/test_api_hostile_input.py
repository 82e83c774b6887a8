"""Hostile request bodies and query strings get a JSON 400/413/422, never a 500 (SQLite and PostgreSQL).

Each case is one that reached a 500 or was silently altered before: deeply nested JSON, Unicode
digits in integer parameters, lone surrogates headed for the database driver, and a chunked body
cut at the size limit and accepted as if it were whole.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ENROLL_TOKEN, Api, register

SPEC = {"input": "testsrc://?duration=1", "outputs": [{"url": "rtmp://h/a/b", "preset": "h264-480p"}]}


def error_of(reply: Any) -> dict[str, Any]:
    body = reply.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


# --- item 4: nesting ---------------------------------------------------------------------------

ROUTES_WITH_BODIES = [
    ("ops", "/api/v1/jobs"),
    ("enroll", "/api/v1/nodes/register"),
    ("node", "/api/v1/nodes/{node}/heartbeat"),
    ("node", "/api/v1/nodes/{node}/claim"),
    ("node", "/api/v1/jobs/j-000000000000/result"),
    ("ops", "/api/v1/jobs/j-000000000000/cancel"),
]


def client_for(api: Api, who: str) -> tuple[Api, str]:
    node_id, node = register(api, "hostile-" + secrets.token_hex(4))
    return {"ops": api, "enroll": api.as_(ENROLL_TOKEN), "node": node}[who], node_id


@pytest.mark.parametrize(("who", "path"), ROUTES_WITH_BODIES)
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_400_on_every_route(api: Api, who: str, path: str, opener: str) -> None:
    client, node_id = client_for(api, who)
    body = opener * 100_000
    reply = client.post(path.format(node=node_id), data=body, content_type="application/json",
                        expect=400)
    err = error_of(reply)
    assert err["code"] == "bad_request" and "nested" in err["message"]


def test_moderate_nesting_is_still_judged_by_the_schema(api: Api) -> None:
    body = {**SPEC, "limits": {"cpu_max": [[[[["x"]]]]]}}
    assert error_of(api.post("/api/v1/jobs", json=body, expect=422))["details"] == {"field": "limits.cpu_max"}


# --- item 5: integer query parameters ----------------------------------------------------------

@pytest.mark.parametrize("raw", ["²", "\u0661\u0662", "\uff11\uff10", "1_0", " 10", "10 ", "+10", "-1",
                                 "0x10", "1e2", "9" * 5000, ""])
@pytest.mark.parametrize("param", ["limit", "cursor"])
def test_integer_query_parameters_that_are_not_ascii_digits_are_400(api: Api, param: str, raw: str) -> None:
    reply = api.get("/api/v1/jobs", query_string={param: raw}, expect=400)
    err = error_of(reply)
    assert err["code"] == "bad_request" and err["details"] == {"field": param}, err


@pytest.mark.parametrize(("param", "raw"), [("limit", "0"), ("limit", "501"), ("cursor", "0"),
                                            ("cursor", str(2**62 + 1))])
def test_integer_query_parameters_out_of_range_are_422(api: Api, param: str, raw: str) -> None:
    err = error_of(api.get("/api/v1/jobs", query_string={param: raw}, expect=422))
    assert err["details"] == {"field": param}


def test_well_formed_integer_query_parameters_still_work(api: Api) -> None:
    api.post("/api/v1/jobs", json=SPEC, expect=201)
    assert len(api.get("/api/v1/jobs?limit=1&cursor=99999").get_json()["jobs"]) == 1


# --- item 6: lone surrogates -------------------------------------------------------------------

LONE = "\\ud800"  # as it travels in JSON: a valid escape, but no Unicode character


def raw_post(client: Api, path: str, raw_json: str, expect: int) -> Any:
    return client.post(path, data=raw_json.encode("ascii"), content_type="application/json",
                       expect=expect)


@pytest.mark.parametrize(("template", "field"), [
    ('{"name": "n1", "slots": 1, "ffmpeg_version": "7.%s"}', "ffmpeg_version"),
    ('{"name": "n1", "slots": 1, "agent_version": "%s"}', "agent_version"),
    ('{"name": "n1", "slots": 1, "labels": {"zone": "a%s"}}', "labels.zone"),
    ('{"name": "n1", "slots": 1, "labels": {"%s": "a"}}', "labels"),
    ('{"name": "n1", "slots": 1, "x%s": 1}', "body"),
    ('{"name": "n1", "slots": 1, "encoders": ["a", "%s"]}', "encoders[1]"),
])
def test_lone_surrogates_in_registration_are_422(api: Api, template: str, field: str) -> None:
    reply = raw_post(api.as_(ENROLL_TOKEN), "/api/v1/nodes/register", template % LONE, 422)
    err = error_of(reply)
    assert err["code"] == "invalid" and err["details"] == {"field": field}, err
    assert "surrogate" in err["message"]
    assert api.get("/api/v1/nodes").get_json()["nodes"] == []


def started_job(api: Api) -> tuple[str, str, Api]:
    job_id = api.post("/api/v1/jobs", json=SPEC, expect=201).get_json()["job"]["id"]
    node_id, node = register(api, "surrogates")
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    return job_id, a["attempt_token"], node


@pytest.mark.parametrize("field", ["reason", "log_tail", "signal"])
def test_lone_surrogates_in_a_result_are_422_and_the_job_keeps_running(api: Api, field: str) -> None:
    job_id, token, node = started_job(api)
    raw = json.dumps({"attempt_token": token, "outcome": "failed"})[:-1] + f', "{field}": "x{LONE}"}}'
    err = error_of(raw_post(node, f"/api/v1/jobs/{job_id}/result", raw, 422))
    assert err["details"] == {"field": field}
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "running"
    node.post(f"/api/v1/jobs/{job_id}/result", json={"attempt_token": token, "outcome": "failed",
                                                      field: "fine \u00e9\U0001f600"})
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "failed"


def test_lone_surrogates_in_a_job_spec_and_heartbeat_are_422(api: Api) -> None:
    raw = json.dumps({**SPEC, "intent": "PLACEHOLDER"}).replace("PLACEHOLDER", LONE)
    assert error_of(raw_post(api, "/api/v1/jobs", raw, 422))["details"] == {"field": "intent"}
    node_id, node = register(api, "hb")
    raw = '{"running": [{"job_id": "j-1", "attempt": 1, "progress": {"fps": "' + LONE + '"}}]}'
    err = error_of(raw_post(node, f"/api/v1/nodes/{node_id}/heartbeat", raw, 422))
    assert err["details"] == {"field": "running[0].progress.fps"}


def test_a_surrogate_pair_is_an_ordinary_character(api: Api) -> None:
    raw = '{"name": "n1", "slots": 1, "agent_version": "\\ud83d\\ude00"}'
    reply = raw_post(api.as_(ENROLL_TOKEN), "/api/v1/nodes/register", raw, 201)
    assert reply.get_json()["node"]["agent_version"] == "\U0001f600"


# --- item 7: chunked bodies --------------------------------------------------------------------

def chunked_post(api: Api, path: str, body: bytes) -> Any:
    """What gunicorn hands the app for ``Transfer-Encoding: chunked``: no Content-Length, a
    de-chunked stream, and ``wsgi.input_terminated`` (the server ends the stream)."""
    return api.client.open(path, method="POST", input_stream=io.BytesIO(body),
                           headers={"Authorization": f"Bearer {api.token}",
                                    "Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})


def padded(size: int) -> bytes:
    """A valid job spec followed by whitespace, ``size`` bytes in all: any prefix of at least
    the spec is also valid JSON, so a cut body would be accepted."""
    head = json.dumps(SPEC).encode()
    return head + b" " * (size - len(head))


def test_a_chunked_body_over_the_limit_is_413_like_one_with_a_length(api: Api) -> None:
    limit = api.client.application.config["MAX_CONTENT_LENGTH"]
    with_length = api.post("/api/v1/jobs", data=padded(limit + 1), content_type="application/json",
                           expect=413)
    chunked = chunked_post(api, "/api/v1/jobs", padded(limit + 1))
    assert chunked.status_code == 413, chunked.get_json()
    assert error_of(chunked) == error_of(with_length)
    assert api.get("/api/v1/jobs").get_json()["jobs"] == []


def test_a_chunked_body_at_the_limit_is_accepted(api: Api) -> None:
    limit = api.client.application.config["MAX_CONTENT_LENGTH"]
    assert chunked_post(api, "/api/v1/jobs", padded(limit)).status_code == 201
    assert chunked_post(api, "/api/v1/jobs", json.dumps(SPEC).encode()).status_code == 201
    assert len(api.get("/api/v1/jobs").get_json()["jobs"]) == 2


# --- NUL: SQLite stores it, PostgreSQL's text refuses it; refused alike on both ---------------

@pytest.mark.parametrize(("body", "field"), [
    ({"name": "n1", "slots": 1, "agent_version": "a\u0000"}, "agent_version"),
    ({"name": "n1", "slots": 1, "labels": {"zone": "\u0000"}}, "labels.zone"),
])
def test_nul_characters_in_registration_are_422(api: Api, body: dict[str, Any], field: str) -> None:
    err = error_of(api.as_(ENROLL_TOKEN).post("/api/v1/nodes/register", json=body, expect=422))
    assert err["details"] == {"field": field} and "NUL" in err["message"]


@pytest.mark.parametrize("field", ["reason", "log_tail"])
def test_nul_characters_in_a_result_are_422(api: Api, field: str) -> None:
    job_id, token, node = started_job(api)
    err = error_of(node.post(f"/api/v1/jobs/{job_id}/result", expect=422,
                             json={"attempt_token": token, "outcome": "failed", field: "a\u0000b"}))
    assert err["details"] == {"field": field}


@pytest.mark.parametrize("query", ["node=%00", "node=n-%00", "node=%ED%A0%80x%00"])
def test_nul_characters_in_query_parameters_are_422(api: Api, query: str) -> None:
    err = error_of(api.get("/api/v1/jobs?" + query, expect=422))
    assert err["details"] == {"field": "node"}


# --- any JSON at all, on every route with a body: never a 500 ---------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12)
RESULT_LIKE = st.fixed_dictionaries({"attempt_token": any_text, "outcome": st.sampled_from(
    ["succeeded", "failed", "canceled"])}, optional={"reason": any_text, "log_tail": any_text,
                                                      "signal": any_text, "outputs": any_json})
REGISTER_LIKE = st.fixed_dictionaries({"name": any_text, "slots": st.integers(0, 300)}, optional={
    "ffmpeg_version": any_text, "agent_version": any_text, "labels": any_json,
    "encoders": st.lists(any_text, max_size=3)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(any_json, RESULT_LIKE, REGISTER_LIKE), route=st.sampled_from(ROUTES_WITH_BODIES))
def test_any_json_with_any_code_point_never_500s(api: Api, body: object, route: tuple[str, str]) -> None:
    client, node_id = client_for(api, route[0])
    raw = json.dumps(body)  # ensure_ascii: lone surrogates and NUL travel as \\u escapes
    reply = client.post(route[1].format(node=node_id), data=raw, content_type="application/json",
                        expect=None)
    assert reply.status_code in (200, 201, 400, 403, 404, 409, 422), (reply.status_code, reply.get_json())
    error_of(reply) if reply.status_code >= 400 else None


@pytest.mark.parametrize("number", ["1e400", "-1e999"])
def test_numbers_beyond_a_double_are_422_not_stored_as_infinity(api: Api, number: str) -> None:
    job_id, token, node = started_job(api)
    node_id = api.get("/api/v1/nodes").get_json()["nodes"][0]["id"]
    raw = json.dumps({"running": [{"job_id": job_id, "attempt": 1, "progress": {"fps": "N"}}]})
    raw = raw.replace('"N"', number)
    err = error_of(raw_post(node, f"/api/v1/nodes/{node_id}/heartbeat", raw, 422))
    assert err["details"] == {"field": "running[0].progress.fps"}
    raw = json.dumps({"attempt_token": token, "outcome": "failed", "outputs": [{"x": "N"}]})
    raw = raw.replace('"N"', number)
    assert error_of(raw_post(node, f"/api/v1/jobs/{job_id}/result", raw, 422))["details"] == {
        "field": "outputs[0].x"}
    assert b"Infinity" not in api.get(f"/api/v1/jobs/{job_id}").get_data()


query_values = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(["1", "500", "²", "0"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(["limit", "cursor", "node", "state", "queue"]), query_values))
def test_any_query_string_on_the_job_list_never_500s(api: Api, query: dict[str, str]) -> None:
    reply = api.get("/api/v1/jobs", query_string=query, expect=None)
    assert reply.status_code in (200, 400, 422), (query, reply.status_code, reply.get_json())
