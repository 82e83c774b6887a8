"""docs/openapi.yaml is a valid OpenAPI document and describes what the master really serves.

Every request here goes through the in-process app; the request and the response are both
checked against the spec with openapi-core, so a field added to, renamed in or dropped from a
response (or a request shape the server changes) fails a test instead of drifting silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from openapi_spec_validator import validate as validate_spec
from werkzeug.test import EnvironBuilder, TestResponse

from ffrtmp import jobspec
from ffrtmp.contract import JobState, Priority, Queue
from ffrtmp.master.api import agents
from tests.conftest import ENROLL_TOKEN, OPERATOR_TOKEN, Api
from tests.conftest import register as register_node

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC_DOC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
SPEC_INPUT = "testsrc://?duration=2&size=320x240&rate=25"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(SPEC_DOC)


def spec_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in SPEC_DOC["paths"].items()
            for method in item if method in HTTP_METHODS}


def template(rule: str) -> str:
    """Flask's ``/jobs/<job_id>`` as OpenAPI's ``/jobs/{job_id}``."""
    return re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule)


def flask_operations(app: Any) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        # the web console (/ui, docs/console.md) is pages over these operations, not an API
        if rule.endpoint != "static" and not rule.endpoint.startswith("console."):
            ops |= {(m, template(rule.rule)) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return ops


class Checked:
    """Sends requests with a bearer token and validates both request and response against the spec."""

    def __init__(self, app: Any, openapi: OpenAPI, token: str = OPERATOR_TOKEN,
                 seen: set[tuple[str, str, int]] | None = None) -> None:
        self.app, self.openapi, self.token = app, openapi, token
        self.client = app.test_client()
        self.seen: set[tuple[str, str, int]] = set() if seen is None else seen

    def as_(self, token: str) -> Checked:
        return Checked(self.app, self.openapi, token, self.seen)

    def call(self, method: str, path: str, expect: int, *, request_valid: bool | None = True,
             **kwargs: Any) -> TestResponse:
        """``request_valid``: True = the spec accepts the request, False = it refuses it, None = skip."""
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        args = {"path": path, "method": method, "headers": headers, **kwargs}
        request = WerkzeugOpenAPIRequest(EnvironBuilder(**args).get_request())
        response = self.client.open(**args)
        assert response.status_code == expect, (response.status_code, response.get_data(as_text=True))
        if request_valid is True:
            self.openapi.validate_request(request)
        elif request_valid is False:
            with pytest.raises(OpenAPIError):
                self.openapi.validate_request(request)
        self.openapi.validate_response(request, WerkzeugOpenAPIResponse(response))
        rule, _ = self.app.url_map.bind("localhost").match(path.partition("?")[0], method=method,
                                                           return_rule=True)
        self.seen.add((method, template(rule.rule), response.status_code))
        return response

    def get(self, path: str, expect: int = 200, **kw: Any) -> Any:
        return self.call("GET", path, expect, **kw).get_json()

    def post(self, path: str, expect: int = 200, **kw: Any) -> Any:
        return self.call("POST", path, expect, **kw).get_json()

    def delete(self, path: str, expect: int = 200, **kw: Any) -> Any:
        return self.call("DELETE", path, expect, **kw).get_json()


@pytest.fixture
def checked(app: Any, openapi: OpenAPI) -> Checked:
    return Checked(app, openapi)


def spec_body(**extra: Any) -> dict[str, Any]:
    return {"input": SPEC_INPUT,
            "outputs": [{"url": "rtmp://127.0.0.1/live/a", "preset": "h264-480p"}], **extra}


def register(ops: Checked, name: str = "node-a", expect: int = 201, **extra: Any) -> tuple[str, Checked]:
    body = {"name": name, "slots": 2, "encoders": ["libx264", "aac"], "hwaccels": [], **extra}
    reply = ops.as_(ENROLL_TOKEN).post("/api/v1/nodes/register", expect, json=body)
    return reply["node_id"], ops.as_(reply["credential"])


def start_one(ops: Checked) -> tuple[str, str, Checked, dict]:
    """Submit, claim and start one job; return (job_id, node_id, node client, assignment)."""
    job_id = ops.post("/api/v1/jobs", 201, json=spec_body())["job"]["id"]
    node_id, node = register(ops, f"node-{job_id}")
    [assignment] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1})["assignments"]
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": assignment["attempt_token"]})
    return job_id, node_id, node, assignment


# --- the document itself ---


def test_spec_is_a_valid_openapi_3_1_document() -> None:
    assert SPEC_DOC["openapi"].startswith("3.1")
    validate_spec(SPEC_DOC)


def test_every_served_route_is_in_the_spec_and_every_spec_path_is_served(app: Any) -> None:
    served, documented = flask_operations(app), spec_operations()
    assert served - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - served == set(), "spec operations the master does not serve"


def test_every_route_states_who_may_call_it() -> None:
    schemes = set(SPEC_DOC["components"]["securitySchemes"])
    assert schemes == {"operatorToken", "enrollmentToken", "nodeCredential"}
    for method, path in spec_operations():
        security = SPEC_DOC["paths"][path][method.lower()]["security"]
        if path.startswith("/api/v1/"):
            assert len(security) == 1 and set(security[0]) <= schemes, (method, path)
        else:
            assert security == [], (method, path)
    agent_paths = {p for m, p in spec_operations()
                   if SPEC_DOC["paths"][p][m.lower()]["security"] == [{"nodeCredential": []}]}
    assert agent_paths == {"/api/v1/nodes/{node_id}/facts",
                           "/api/v1/nodes/{node_id}/heartbeat", "/api/v1/nodes/{node_id}/claim",
                           "/api/v1/jobs/{job_id}/start", "/api/v1/jobs/{job_id}/result",
                           "/api/v1/nodes/{node_id}/starts", "/api/v1/nodes/{node_id}/results",
                           "/api/v1/nodes/{node_id}/maintenance", "/api/v1/nodes/{node_id}/progress"}


@pytest.mark.parametrize(("method", "path"), sorted(op for op in spec_operations() if "/api/v1/" in op[1]))
def test_each_route_accepts_exactly_the_token_kind_the_spec_declares(api: Api, method: str,
                                                                     path: str) -> None:
    job_id = api.post("/api/v1/jobs", json=spec_body(), expect=201).get_json()["job"]["id"]
    node_id, node = register_node(api)
    tokens = {"operatorToken": OPERATOR_TOKEN, "enrollmentToken": ENROLL_TOKEN, "nodeCredential": node.token}
    [declared] = SPEC_DOC["paths"][path][method.lower()]["security"][0]
    url = path.format(job_id=job_id, node_id=node_id, ref=node_id)
    for kind, token in tokens.items():
        status = api.as_(token).request(method, url, expect=None, json={}).status_code
        if kind == declared:
            assert status not in (401, 403), (kind, status)
        else:
            assert status in (401, 403), (kind, status)


def test_jobspec_schema_mirrors_the_jobspec_module() -> None:
    schemas = SPEC_DOC["components"]["schemas"]
    assert tuple(schemas["JobSpec"]["properties"]) == jobspec._TOP_FIELDS
    assert tuple(schemas["OutputSpec"]["properties"]) == jobspec._OUTPUT_FIELDS
    assert tuple(schemas["CanonicalOutput"]["properties"]) == jobspec._OUTPUT_FIELDS
    assert tuple(schemas["Limits"]["properties"]) == jobspec._LIMIT_FIELDS
    assert schemas["Preset"]["enum"] == list(jobspec.PRESETS)
    assert schemas["Queue"]["enum"] == list(Queue)
    assert schemas["Priority"]["enum"] == list(Priority)
    assert schemas["EncoderPreset"]["enum"] == list(jobspec.ENCODER_PRESETS)
    assert schemas["JobState"]["enum"] == list(JobState)
    for name, preset in jobspec.PRESETS.items():  # the preset table in the description
        row = next(line for line in schemas["Preset"]["description"].splitlines()
                   if line.startswith(f"| {name} |"))
        for value in preset.values():
            assert f"| {value} |" in row, (name, value)


@pytest.mark.parametrize(("schema", "fields"), [
    ("RegisterRequest", agents.REGISTER), ("HeartbeatRequest", agents.HEARTBEAT),
    ("RunningAttempt", agents.RUNNING), ("ClaimRequest", agents.CLAIM),
    ("StartRequest", agents.START), ("ResultRequest", agents.RESULT),
    ("StartItem", agents.START_ITEM), ("ResultItem", agents.RESULT_ITEM),
    ("DeliveredOutputReport", agents.DELIVERED)])
def test_agent_request_schemas_mirror_the_server_field_tables(schema: str, fields: dict) -> None:
    doc = SPEC_DOC["components"]["schemas"][schema]
    assert list(doc["properties"]) == list(fields)
    assert set(doc.get("required", [])) == {k for k, f in fields.items() if f.required}
    assert doc["additionalProperties"] is False


# --- real traffic against the spec ---


def test_full_lifecycle_requests_and_responses_match_the_spec(checked: Checked, app: Any) -> None:
    ops = checked
    assert ops.get("/health")["status"] == "healthy"
    assert ops.get("/ready")["status"] == "ready"
    assert "ffrtmp_jobs_pending" in ops.call("GET", "/metrics", 200).get_data(as_text=True)

    full = spec_body(
        outputs=[{"url": "rtmp://127.0.0.1/live/hi", "preset": "h264-720p", "video_bitrate": 2_000_000,
                  "fps": 29.97, "size": "1280x720", "encoder_preset": "fast", "audio_bitrate": "96k"},
                 {"url": "rtmp://127.0.0.1/live/copy", "preset": "copy"}],
        queue="live", priority="high", requires=["libx264"], duration_s=1.5, intent="demo",
        limits={"cpu_max": "50000", "memory_max": 512 << 20})
    response = ops.call("POST", "/api/v1/jobs", 201, json=full)
    job = response.get_json()["job"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["spec"]["outputs"][0]["video_bitrate"] == "2000000"
    job_id = job["id"]

    page = ops.get("/api/v1/jobs", query_string={"state": "queued,running", "queue": "live", "limit": 1})
    assert [j["id"] for j in page["jobs"]] == [job_id] and page["next_cursor"] is None
    ops.get("/api/v1/jobs")

    node_id, node = register(ops, labels={"rack": "r1"}, ffmpeg_version="7.1", agent_version="0.1.0")
    taken = ops.as_(ENROLL_TOKEN).call("POST", "/api/v1/nodes/register", 409,
                                       json={"name": "node-a", "slots": 3})
    assert taken.get_json()["error"]["code"] == "node_name_in_use"  # a live node's name stays its own
    facts = node.call("PUT", f"/api/v1/nodes/{node_id}/facts", 200,
                      json={"name": "node-a", "slots": 3, "encoders": ["libx264", "aac"]}).get_json()
    assert facts["node_id"] == node_id and facts["node"]["slots"] == 3  # its own restart: same id
    beat = node.post(f"/api/v1/nodes/{node_id}/heartbeat")  # an empty body is a heartbeat too
    assert beat["drain"] is False
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 2, "wait_s": 0})["assignments"]
    assert a["job_id"] == job_id and a["spec"] == job["spec"]
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={
        "running": [{"job_id": job_id, "attempt": 1,
                     "progress": {"percent": 42.5, "fps": 30, "speed": "1.01x", "eta": None}}],
        "free_slots": 2})
    reported = node.post(f"/api/v1/nodes/{node_id}/progress", json={"running": [
        {"job_id": job_id, "attempt": 1, "progress": {"percent": 43.0, "fps": 30, "speed": 1.01,
                                                      "out_time_s": 4.3, "eta_s": 5.6}}]})
    assert reported == {"stored": 1}
    assert ops.get(f"/api/v1/jobs/{job_id}")["job"]["progress"]["updated_at"]
    ops.post(f"/api/v1/jobs/{job_id}/cancel")
    beat = node.post(f"/api/v1/nodes/{node_id}/heartbeat",
                     json={"running": [{"job_id": job_id, "attempt": 1}]})
    assert beat["cancel"] == [{"job_id": job_id, "attempt": 1}]
    result = {"attempt_token": a["attempt_token"], "outcome": "canceled", "exit_code": None,
              "signal": "SIGTERM", "platform_sla": True, "reason": "canceled by operator",
              "runtime_s": 1.25, "started_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T00:00:01Z",
              "log_tail": "frame=10\n", "outputs": [{"url": "store:///out/hi.mp4", "bytes": 10,
                                                       "sha256": "0" * 64, "size": "640x360"}]}
    assert node.post(f"/api/v1/jobs/{job_id}/result", json=result)["state"] == "canceled"
    assert ops.get(f"/api/v1/jobs/{job_id}/logs")["log"] == "frame=10\n"
    retried = ops.post(f"/api/v1/jobs/{job_id}/retry", json={})["job"]
    assert retried["state"] == "queued"
    [b] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1})["assignments"]
    started = node.post(f"/api/v1/nodes/{node_id}/starts", json={"starts": [
        {"job_id": job_id, "attempt_token": b["attempt_token"]}, {"job_id": job_id}]})["starts"]
    assert [e["status"] for e in started] == [200, 422]
    reported = node.post(f"/api/v1/nodes/{node_id}/results", json={"results": [
        {"job_id": job_id, "attempt_token": b["attempt_token"], "outcome": "succeeded",
         "exit_code": 0}, {"job_id": job_id, "attempt_token": a["attempt_token"],
                           "outcome": "succeeded"}]})["results"]
    assert [e["status"] for e in reported] == [200, 409]
    shown = ops.get(f"/api/v1/jobs/{job_id}")["job"]
    assert shown["state"] == "succeeded"
    assert [x["state"] for x in shown["attempts"]] == ["canceled", "succeeded"]

    batch = ops.post("/api/v1/jobs/batch", json={"jobs": [spec_body(intent="batch"), {"input": 1}]})
    assert [e["status"] for e in batch["jobs"]] == [201, 422]

    assert [n["id"] for n in ops.get("/api/v1/nodes")["nodes"]] == [node_id]
    assert ops.get(f"/api/v1/nodes/{node_id}")["node"]["labels"] == {}
    assert ops.post(f"/api/v1/nodes/{node_id}/drain")["node"]["draining"] is True
    assert node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={})["drain"] is True
    assert node.post(f"/api/v1/nodes/{node_id}/maintenance")["node"]["status"] == "maintenance"
    beat = node.post(f"/api/v1/nodes/{node_id}/heartbeat",
                     json={"ready": {"ok": False, "reason": "media unreachable"}})
    assert beat["drain"] is True
    assert ops.get(f"/api/v1/nodes/{node_id}")["node"]["ready_reason"] == "draining; media unreachable"
    assert ops.post(f"/api/v1/nodes/{node_id}/undrain")["node"]["draining"] is False
    assert ops.delete(f"/api/v1/nodes/{node_id}") == {"removed": node_id}
    app.extensions["ffrtmp"].store.announce_master("m1:8080", version="0.1.0", started_at=1.0)
    assert app.extensions["ffrtmp"].store.try_duty("leases", 1, holder="m1:8080")
    assert ops.get("/api/v1/masters")["masters"][0]["holds"] == ["leases"]
    stats = ops.get("/api/v1/stats/queue")
    assert stats["bucket_s"] == 300 and [b["finished"] for b in stats["buckets"]][-1] == 2

    succeeded = {(m, p) for m, p, status in ops.seen if status < 300}
    assert succeeded == spec_operations(), "every operation answered successfully at least once"


def test_ready_answers_503_while_shutting_down_in_the_documented_shape(checked: Checked, app: Any) -> None:
    app.extensions["ffrtmp"].shutdown.request("test")
    body = checked.get("/ready", 503)
    assert body["status"] == "not_ready" and body["checks"]["shutdown"] == "shutting_down"


def test_ready_reports_a_broken_database_in_the_documented_shape(checked: Checked, app: Any) -> None:
    store = app.extensions["ffrtmp"].store
    store._conn().execute("DROP TABLE schema_version")
    body = checked.get("/ready", 503)
    assert body["checks"]["database"].startswith("error: ")


def test_error_responses_match_the_spec(checked: Checked) -> None:
    ops = checked
    job_id, node_id, node, a = start_one(ops)
    _, other = register(ops, "node-other")
    anonymous, stranger, enroll = ops.as_(""), ops.as_("x" * 24), ops.as_(ENROLL_TOKEN)
    codes: dict[int, set[str]] = {}

    def expect(client: Checked, status: int, method: str, path: str, code: str, **kw: Any) -> TestResponse:
        reply = client.call(method, path, status, **kw)
        assert reply.get_json()["error"]["code"] == code, reply.get_json()
        codes.setdefault(status, set()).add(code)
        return reply

    # 401: no token (the spec, too, refuses the request) or one nobody issued
    missing = expect(anonymous, 401, "GET", "/api/v1/jobs", "unauthorized", request_valid=False)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    expect(stranger, 401, "POST", f"/api/v1/nodes/{node_id}/claim", "unauthorized", json={"slots": 1})
    expect(stranger, 401, "POST", "/api/v1/nodes/register", "unauthorized", json={"name": "n", "slots": 1})
    # 403: the wrong kind of token, or a node acting for another
    expect(node, 403, "GET", "/api/v1/nodes", "forbidden")
    expect(ops, 403, "POST", f"/api/v1/nodes/{node_id}/heartbeat", "forbidden", json={})
    expect(other, 403, "POST", f"/api/v1/nodes/{node_id}/claim", "forbidden", json={"slots": 1})
    expect(other, 403, "POST", f"/api/v1/jobs/{job_id}/result", "not_your_attempt",
           json={"attempt_token": a["attempt_token"], "outcome": "succeeded"})
    # 404 on every route that takes an id
    expect(node, 404, "POST", "/api/v1/jobs/j-missing/start", "job_not_found",
           json={"attempt_token": a["attempt_token"]})
    expect(node, 404, "POST", "/api/v1/jobs/j-missing/result", "job_not_found",
           json={"attempt_token": a["attempt_token"], "outcome": "failed"})
    for method, path in (("GET", "/api/v1/jobs/j-missing"), ("GET", "/api/v1/jobs/j-missing/logs"),
                         ("POST", "/api/v1/jobs/j-missing/cancel"), ("POST", "/api/v1/jobs/j-missing/retry")):
        expect(ops, 404, method, path, "job_not_found")
    for method, path in (("GET", "/api/v1/nodes/n-missing"), ("POST", "/api/v1/nodes/n-missing/drain"),
                         ("POST", "/api/v1/nodes/n-missing/undrain"), ("DELETE", "/api/v1/nodes/n-missing")):
        expect(ops, 404, method, path, "node_not_found")
    # 409: what the lifecycle refuses
    expect(ops, 409, "POST", f"/api/v1/jobs/{job_id}/retry", "not_retryable")
    expect(ops, 409, "DELETE", f"/api/v1/nodes/{node_id}", "node_busy")
    node.post(f"/api/v1/jobs/{job_id}/result",
              json={"attempt_token": a["attempt_token"], "outcome": "failed", "exit_code": 1})
    expect(node, 409, "POST", f"/api/v1/jobs/{job_id}/result", "result_conflict",
           json={"attempt_token": a["attempt_token"], "outcome": "succeeded"})
    expect(node, 409, "POST", f"/api/v1/jobs/{job_id}/start", "stale_attempt",
           json={"attempt_token": "not-a-token"})
    expect(ops, 409, "POST", f"/api/v1/jobs/{job_id}/cancel", "job_finished")
    # 400, 422, 413: bad bodies and parameters
    expect(ops, 400, "POST", "/api/v1/jobs", "bad_request", data="{not json",
           content_type="application/json", request_valid=None)
    expect(ops, 422, "POST", "/api/v1/jobs", "invalid", json=spec_body(queue="urgent"), request_valid=False)
    expect(ops, 422, "GET", "/api/v1/jobs?limit=0", "invalid", request_valid=False)
    expect(ops, 422, "GET", "/api/v1/stats/queue?window=1", "invalid", request_valid=None)
    expect(ops, 422, "POST", f"/api/v1/jobs/{job_id}/cancel", "invalid", json={"force": True},
           request_valid=False)
    expect(node, 422, "POST", f"/api/v1/nodes/{node_id}/heartbeat", "invalid",
           json={"running": [{"job_id": job_id}]}, request_valid=False)
    too_big = b"{" + b" " * ops.app.config["MAX_CONTENT_LENGTH"] + b"}"
    expect(ops, 413, "POST", "/api/v1/jobs", "request_entity_too_large",
           data=too_big, content_type="application/json", request_valid=None)
    expect(enroll, 413, "POST", "/api/v1/nodes/register", "request_entity_too_large",
           data=too_big, content_type="application/json", request_valid=None)
    assert set(codes) == {400, 401, 403, 404, 409, 413, 422}


INVALID_REQUESTS: list[tuple[str, str, str, dict[str, Any], str]] = [
    # (who, method, path, body, field named by the server)
    ("ops", "POST", "/api/v1/jobs", {"outputs": []}, "input"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[]), "outputs"),
    ("ops", "POST", "/api/v1/jobs", spec_body(extra=1), "extra"),
    ("ops", "POST", "/api/v1/jobs", spec_body(priority="urgent"), "priority"),
    ("ops", "POST", "/api/v1/jobs", spec_body(requires="libx264"), "requires"),
    ("ops", "POST", "/api/v1/jobs", spec_body(requires=["no spaces"]), "requires[0]"),
    ("ops", "POST", "/api/v1/jobs", spec_body(duration_s=0), "duration_s"),
    ("ops", "POST", "/api/v1/jobs", spec_body(intent=""), "intent"),
    ("ops", "POST", "/api/v1/jobs", spec_body(limits={"cpu_max": "lots"}), "limits.cpu_max"),
    ("ops", "POST", "/api/v1/jobs", spec_body(limits={"swap": "1G"}), "limits.swap"),
    ("ops", "POST", "/api/v1/jobs", spec_body(limits={"memory_max": True}), "limits.memory_max"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[{"url": "rtmp://h/a/b"}]), "outputs[0].preset"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[{"url": "rtmp://h/a/b", "preset": "h264-4k"}]),
     "outputs[0].preset"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "video_bitrate": "fast"}]),
     "outputs[0].video_bitrate"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "size": "720p"}]), "outputs[0].size"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "fps": 0}]), "outputs[0].fps"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "encoder_preset": "turbo"}]),
     "outputs[0].encoder_preset"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "video_codec": "H.264"}]), "outputs[0].video_codec"),
    ("ops", "POST", "/api/v1/jobs", spec_body(outputs=[
        {"url": "rtmp://h/a/b", "preset": "h264-480p", "audio": "aac"}]), "outputs[0].audio"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a b", "slots": 1}, "name"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a", "slots": 0}, "slots"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a"}, "slots"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a", "slots": 1, "encoders": ["ok", 5]},
     "encoders[1]"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a", "slots": 1, "labels": {"k": 1}}, "labels.k"),
    ("enroll", "POST", "/api/v1/nodes/register", {"name": "a", "slots": 1, "os": "linux"}, "os"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": True}, "slots"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": 1, "wait_s": -1}, "wait_s"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {}, "slots"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": 12345678}, "claim_id"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": "short"}, "claim_id"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": "a" * 65}, "claim_id"),
    ("node", "POST", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": "no spaces here"},
     "claim_id"),
    ("node", "POST", "/api/v1/nodes/{node}/heartbeat", {"running": [{"job_id": "j", "attempt": 0}]},
     "running[0].attempt"),
    ("node", "POST", "/api/v1/nodes/{node}/heartbeat",
     {"running": [{"job_id": "j", "attempt": 1, "progress": {"p": [1]}}]}, "running[0].progress.p"),
    ("node", "POST", "/api/v1/nodes/{node}/heartbeat", {"slots": 1}, "slots"),
    ("node", "POST", "/api/v1/jobs/j-x/start", {}, "attempt_token"),
    ("node", "POST", "/api/v1/jobs/j-x/result", {"attempt_token": "t", "outcome": "lost"}, "outcome"),
    ("node", "POST", "/api/v1/jobs/j-x/result", {"attempt_token": "t", "outcome": "failed",
                                                 "exit_code": 256}, "exit_code"),
    ("node", "POST", "/api/v1/jobs/j-x/result", {"attempt_token": "t", "outcome": "failed",
                                                 "platform_sla": "no"}, "platform_sla"),
    ("node", "POST", "/api/v1/jobs/j-x/result", {"attempt_token": "t", "outcome": "failed",
                                                 "outputs": [None]}, "outputs[0]"),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "field"), INVALID_REQUESTS,
                         ids=[f"{c[2].rsplit('/', 1)[-1]}-{c[4]}" for c in INVALID_REQUESTS])
def test_spec_and_server_refuse_the_same_bad_requests(checked: Checked, who: str, method: str,
                                                      path: str, body: dict, field: str) -> None:
    node_id, node = register(checked, "refuser")
    client = {"ops": checked, "enroll": checked.as_(ENROLL_TOKEN), "node": node}[who]
    reply = client.call(method, path.format(node=node_id), 422, json=body, request_valid=False)
    error = reply.get_json()["error"]
    assert error["details"] == {"field": field} and error["message"].startswith(field)


ACCEPTED_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("enroll", "/api/v1/nodes/register", {"name": "n1", "slots": 1, "encoders": None, "hwaccels": None,
                                          "labels": None, "ffmpeg_version": None, "agent_version": None}),
    ("enroll", "/api/v1/nodes/register", {"name": "gpu-1.rack:2", "slots": 256, "hwaccels": ["cuda"],
                                          "labels": {"zone": "a"}}),
    ("node", "/api/v1/nodes/{node}/heartbeat", {"running": None, "free_slots": None}),
    ("node", "/api/v1/nodes/{node}/claim", {"slots": 1, "wait_s": None}),
    ("node", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": None}),
    ("node", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": "Zq3_-x9TbYk0aPc1" * 4}),
    ("ops", "/api/v1/jobs", spec_body(limits=None, duration_s=None, intent=None)),
    ("ops", "/api/v1/jobs", spec_body(limits={"cpu_max": "max 100000", "memory_max": "2G"})),
    ("ops", "/api/v1/jobs", spec_body(limits={"cpu_max": None, "memory_max": "max"})),
    ("ops", "/api/v1/jobs", spec_body(outputs=[{"url": "rtmp://h/a/b", "preset": "h264-360p",
                                                "fps": "29.97", "audio_bitrate": "4.5M"}])),
]


def test_a_claim_sent_again_is_answered_again_with_new_tokens(checked: Checked) -> None:
    """Its reply was lost: the same claim id gets the same job, a new token, and the old one
    no longer starts it."""
    job_id = checked.post("/api/v1/jobs", 201, json=spec_body())["job"]["id"]
    checked.post("/api/v1/jobs", 201, json=spec_body())
    node_id, node = register(checked, "replayer")
    body = {"slots": 1, "wait_s": 0, "claim_id": "f3Q-p0_Lz8kWcX2y"}
    [lost] = node.post(f"/api/v1/nodes/{node_id}/claim", json=body)["assignments"]
    [again] = node.post(f"/api/v1/nodes/{node_id}/claim", json=body)["assignments"]
    assert (again["job_id"], again["attempt"]) == (lost["job_id"], lost["attempt"]) == (job_id, 1)
    assert again["attempt_token"] != lost["attempt_token"]
    stale = node.call("POST", f"/api/v1/jobs/{job_id}/start", 409,
                      json={"attempt_token": lost["attempt_token"]}).get_json()
    assert stale["error"]["code"] == "stale_attempt"
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": again["attempt_token"]})
    assert node.post(f"/api/v1/nodes/{node_id}/claim", json=body)["assignments"] == []
    assert len(checked.get(f"/api/v1/jobs/{job_id}")["job"]["attempts"]) == 1


@pytest.mark.parametrize(("who", "path", "body"), ACCEPTED_REQUESTS)
def test_spec_and_server_accept_the_same_optional_and_null_fields(checked: Checked, who: str, path: str,
                                                                  body: dict) -> None:
    node_id, node = register(checked, "accepter")
    client = {"ops": checked, "enroll": checked.as_(ENROLL_TOKEN), "node": node}[who]
    expect = 200 if path.endswith(("heartbeat", "claim")) else 201
    client.call("POST", path.format(node=node_id), expect, json=body)


@pytest.mark.parametrize(("who", "path", "body"), [
    ("enroll", "/api/v1/nodes/register", {"name": "node\n", "slots": 1}),
    ("enroll", "/api/v1/nodes/register", {"name": "n2", "slots": 1, "encoders": ["libx264\n"]}),
    ("ops", "/api/v1/jobs", spec_body(requires=["h264_nvenc\n"])),
    ("ops", "/api/v1/jobs", spec_body(outputs=[{"url": "rtmp://h/a/b", "preset": "h264-480p",
                                                "video_codec": "libx264\n"}])),
    ("node", "/api/v1/nodes/{node}/claim", {"slots": 1, "claim_id": "claim-id\n"}),
])
def test_names_with_a_trailing_newline_are_refused(checked: Checked, who: str, path: str, body: dict) -> None:
    # The spec's patterns end in "$"; regex engines differ on a trailing newline there
    # (ECMA-262 refuses it, Python's re accepts it), so only the server's answer is asserted.
    node_id, node = register(checked, "newliner")
    client = {"ops": checked, "enroll": checked.as_(ENROLL_TOKEN), "node": node}[who]
    client.call("POST", path.format(node=node_id), 422, json=body, request_valid=None)


@pytest.fixture
def many_jobs(checked: Checked) -> list[str]:
    return [checked.post("/api/v1/jobs", 201, json=spec_body(intent=f"j{i}"))["job"]["id"] for i in range(3)]


def test_pagination_cursor_is_documented_and_works(checked: Checked, many_jobs: list[str]) -> None:
    first = checked.get("/api/v1/jobs", query_string={"limit": 2})
    assert isinstance(first["next_cursor"], int)
    rest = checked.get("/api/v1/jobs", query_string={"limit": 2, "cursor": first["next_cursor"]})
    assert [j["id"] for j in first["jobs"] + rest["jobs"]] == many_jobs[::-1]
    assert rest["next_cursor"] is None
