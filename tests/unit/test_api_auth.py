"""Every protected route refuses a missing or wrong token (401) and the wrong kind of caller (403)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ENROLL_TOKEN, Api, register

OPERATOR_ROUTES = [
    ("POST", "/api/v1/jobs"), ("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/j-1"),
    ("POST", "/api/v1/jobs/j-1/cancel"), ("POST", "/api/v1/jobs/j-1/retry"),
    ("GET", "/api/v1/jobs/j-1/logs"), ("GET", "/api/v1/nodes"), ("GET", "/api/v1/nodes/n-1"),
    ("POST", "/api/v1/nodes/n-1/drain"), ("POST", "/api/v1/nodes/n-1/undrain"),
    ("DELETE", "/api/v1/nodes/n-1"),
]
NODE_ROUTES = [("POST", "/api/v1/nodes/{node}/heartbeat"), ("POST", "/api/v1/nodes/{node}/claim"),
               ("POST", "/api/v1/jobs/j-1/start"), ("POST", "/api/v1/jobs/j-1/result"),
               ("PUT", "/api/v1/nodes/{node}/facts")]
ALL = [*OPERATOR_ROUTES, *NODE_ROUTES, ("POST", "/api/v1/nodes/register")]


@pytest.mark.parametrize(("method", "path"), ALL)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-real-token-123456", "Basic abc"])
def test_missing_or_wrong_token_is_401(api: Api, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    reply = api.as_("").request(method, path.format(node="n-1"), expect=401, headers=headers,
                                json={})
    body = reply.get_json()
    assert body["error"]["code"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_node_credentials_cannot_use_operator_routes(api: Api, method: str, path: str) -> None:
    _, node = register(api)
    assert node.request(method, path, expect=403, json={}).get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), NODE_ROUTES)
def test_operator_tokens_cannot_use_agent_routes(api: Api, method: str, path: str) -> None:
    node_id, _ = register(api)
    api.request(method, path.format(node=node_id), expect=403, json={})


@pytest.mark.parametrize(("method", "path"), NODE_ROUTES[:2])
def test_a_node_cannot_act_as_another(api: Api, method: str, path: str) -> None:
    a_id, _ = register(api, "node-a")
    _, b = register(api, "node-b")
    b.request(method, path.format(node=a_id), expect=403, json={"slots": 1})


def test_a_node_cannot_start_or_report_another_nodes_attempt(api: Api) -> None:
    job = api.post("/api/v1/jobs", json={"input": "testsrc://", "outputs": [
        {"url": "rtmp://127.0.0.1/live/a", "preset": "h264-480p"}]}, expect=201).get_json()["job"]
    a_id, a = register(api, "node-a")
    _, b = register(api, "node-b")
    [assignment] = a.post(f"/api/v1/nodes/{a_id}/claim", json={"slots": 1}).get_json()["assignments"]
    token = assignment["attempt_token"]
    b.post(f"/api/v1/jobs/{job['id']}/start", json={"attempt_token": token}, expect=403)
    b.post(f"/api/v1/jobs/{job['id']}/result",
           json={"attempt_token": token, "outcome": "succeeded"}, expect=403)


def test_enrollment_token_is_not_an_operator_token(api: Api) -> None:
    api.as_(ENROLL_TOKEN).get("/api/v1/jobs", expect=401)


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probes_need_no_token(api: Any, path: str) -> None:
    assert api.as_("").get(path, expect=None).status_code == 200
