"""The console's routes in-process: its session, its CSRF locks, its refusals, its charts.

The browser tests (tests/browser) drive the same routes in a real Chromium against a real
master; these pin each rule on its own, on SQLite (the API views they call are tested on both
databases by the API's own tests).
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import session
from flask.globals import request_ctx
from flask.sessions import NullSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffrtmp import config
from ffrtmp.isotime import iso_from_ts
from ffrtmp.master.console import charts, render
from tests.conftest import OPERATOR_TOKEN, Api, make_app, master_env, register


@pytest.fixture
def console_app(tmp_path: Path) -> Iterator[Any]:
    application = make_app(config.load("master", {}, master_env(tmp_path)))
    yield application
    application.extensions["ffrtmp"].store.close()


@pytest.fixture
def client(console_app: Any) -> Any:
    return console_app.test_client()


def logged_in(client: Any) -> str:
    """Log ``client`` in; return the page's CSRF token."""
    reply = client.post("/ui/login", data={"token": OPERATOR_TOKEN})
    assert reply.status_code == 303 and reply.headers["Location"] == "/ui/jobs"
    page = client.get("/ui/jobs")
    assert page.status_code == 200
    match = re.search(rb'<meta name="csrf" content="([^"]+)">', page.data)
    assert match is not None
    return match.group(1).decode()


def submit(console_app: Any, tmp_path: Path) -> str:
    api = Api(console_app.test_client())
    reply = api.post("/api/v1/jobs", expect=201, json={
        "input": "testsrc://?duration=5",
        "outputs": [{"url": f"file://{tmp_path}/media/out.mp4", "preset": "h264-480p"}]})
    job_id: str = reply.get_json()["job"]["id"]
    return job_id


@pytest.mark.parametrize("path", ["/ui/", "/ui/jobs", "/ui/nodes", "/ui/jobs/j-abc"])
def test_pages_without_a_session_redirect_to_the_login_form(client: Any, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 302 and reply.headers["Location"] == "/ui/login"


def test_json_endpoints_without_a_session_answer_401(client: Any) -> None:
    for method in ("GET", "POST"):
        reply = client.open("/ui/api/jobs", method=method)
        assert reply.status_code == 401
        assert reply.get_json()["error"]["code"] == "unauthorized"


def test_a_wrong_token_or_a_bad_form_is_refused_without_a_session(client: Any) -> None:
    assert client.post("/ui/login", data={"token": "op-wrong"}).status_code == 401
    assert client.post("/ui/login", data={}).status_code == 400
    assert client.post("/ui/login", data={"token": OPERATOR_TOKEN, "next": "x"}).status_code == 400
    foreign = client.post("/ui/login", data={"token": OPERATOR_TOKEN},
                          headers={"Origin": "http://elsewhere.example"})
    assert foreign.status_code == 400 and b"another site" in foreign.data
    assert client.get_cookie("ffrtmp_console", path="/ui") is None


def test_the_session_cookie_is_signed_httponly_strict_and_holds_no_token(client: Any) -> None:
    reply = client.post("/ui/login", data={"token": OPERATOR_TOKEN})
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; with TLS on it is Secure (next test)
    assert OPERATOR_TOKEN not in cookie and "op-" not in cookie
    assert OPERATOR_TOKEN not in reply.headers["Location"]


def test_the_cookie_is_secure_when_the_master_serves_tls(tmp_path: Path) -> None:
    settings = config.load("master", {}, master_env(tmp_path))
    tls = dataclasses.replace(settings, tls_cert_file="/cert.pem", tls_key_file="/key.pem")
    application = make_app(tls)
    try:
        reply = application.test_client().post("/ui/login", data={"token": OPERATOR_TOKEN})
        assert "Secure" in reply.headers["Set-Cookie"]
    finally:
        application.extensions["ffrtmp"].store.close()


def test_a_new_token_file_ends_old_sessions(console_app: Any, client: Any) -> None:
    logged_in(client)
    ctx = console_app.extensions["ffrtmp"]
    ctx.settings = dataclasses.replace(ctx.settings, api_tokens=("op-" + "c" * 29,))
    assert client.get("/ui/jobs").status_code == 302
    assert client.get("/ui/api/jobs").status_code == 401


def test_actions_need_the_csrf_token_and_this_origin(console_app: Any, client: Any,
                                                     tmp_path: Path) -> None:
    csrf = logged_in(client)
    job_id = submit(console_app, tmp_path)
    url = f"/ui/api/jobs/{job_id}/cancel"
    assert client.post(url).status_code == 403
    assert client.post(url, headers={"X-Console-CSRF": "x" + csrf}).status_code == 403
    foreign = client.post(url, headers={"X-Console-CSRF": csrf, "Origin": "http://elsewhere.example"})
    assert foreign.status_code == 403
    assert client.get(f"/ui/api/jobs/{job_id}").get_json()["job"]["state"] == "queued"
    done = client.post(url, headers={"X-Console-CSRF": csrf, "Origin": "http://localhost"})
    assert done.status_code == 200 and done.get_json()["job"]["state"] == "canceled"
    retried = client.post(f"/ui/api/jobs/{job_id}/retry", headers={"X-Console-CSRF": csrf})
    assert retried.status_code == 200 and retried.get_json()["job"]["state"] == "queued"


def test_drain_and_undrain_through_the_console(console_app: Any, client: Any) -> None:
    csrf = logged_in(client)
    node_id, _ = register(Api(console_app.test_client()), "w1")
    drained = client.post(f"/ui/api/nodes/{node_id}/drain", headers={"X-Console-CSRF": csrf})
    assert drained.status_code == 200 and drained.get_json()["node"]["draining"] is True
    page = client.get("/ui/nodes")
    assert page.status_code == 200 and b"status-draining" in page.data
    undrained = client.post(f"/ui/api/nodes/{node_id}/undrain", headers={"X-Console-CSRF": csrf})
    assert undrained.get_json()["node"]["draining"] is False


def test_the_console_reaches_only_the_read_views_and_the_four_actions(console_app: Any,
                                                                     client: Any) -> None:
    csrf = logged_in(client)
    node_id, _ = register(Api(console_app.test_client()), "w1")
    headers = {"X-Console-CSRF": csrf}
    assert client.post("/ui/api/jobs", headers=headers, json={"input": "x"}).status_code == 400
    assert client.post("/ui/api/jobs", headers=headers).status_code == 404  # no submit
    assert client.post(f"/ui/api/nodes/{node_id}/heartbeat", headers=headers).status_code == 404
    assert client.get("/ui/api/masters").status_code == 404
    assert client.get("/ui/api/nodes").get_json()["nodes"][0]["id"] == node_id


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/ui/jobs?state=bogus", 400, b"state: must be one of"),
    ("/ui/jobs?queue=nope", 400, b"queue: must be one of"),
    ("/ui/jobs?colour=red", 400, b"colour: unknown filter"),
    ("/ui/jobs/not-a-job!", 400, b"job id"),
    ("/ui/jobs/j-0123456789ab", 404, b"j-0123456789ab"),
    ("/ui/nodes?x=1", 400, b"takes no query"),
])
def test_bad_input_to_pages_is_a_clear_400_or_404(client: Any, path: str, status: int,
                                                  words: bytes) -> None:
    logged_in(client)
    reply = client.get(path)
    assert reply.status_code == status and words in reply.data


def test_bad_input_to_json_endpoints_is_the_apis_refusal(client: Any) -> None:
    logged_in(client)
    reply = client.get("/ui/api/jobs?state=bogus")
    assert reply.status_code == 422 and reply.get_json()["error"]["details"]["field"] == "state"
    assert client.get("/ui/api/jobs/j-0123456789ab").status_code == 404


def test_the_pages_render_a_job_and_its_detail(console_app: Any, client: Any, tmp_path: Path) -> None:
    logged_in(client)
    job_id = submit(console_app, tmp_path)
    jobs = client.get("/ui/jobs?state=queued")
    assert jobs.status_code == 200 and f'data-job-id="{job_id}"'.encode() in jobs.data
    assert b"Content-Security-Policy" not in jobs.data
    assert "default-src 'self'" in jobs.headers["Content-Security-Policy"]
    detail = client.get(f"/ui/jobs/{job_id}")
    assert detail.status_code == 200 and b"testsrc://?duration=5" in detail.data
    assert b"(no log yet)" in detail.data and b"submitted" in detail.data


def test_charts_draw_the_queue_depth_and_the_throughput_per_five_minutes() -> None:
    stats = {"bucket_s": 300, "buckets": [
        {"end": iso_from_ts(1_800_000_000.0 - 300 * (11 - i)), "queued": q, "finished": f}
        for i, (q, f) in enumerate(zip([1, 1] + [0] * 8 + [2, 3], [0] * 9 + [1, 0, 1], strict=True))]}
    depth, throughput = charts.last_hour(stats)
    assert depth.title == "queue depth (queued)" and depth.values == [1, 1] + [0] * 8 + [2, 3]
    assert throughput.title == "finished per 5 min" and throughput.values == [0] * 9 + [1, 0, 1]
    bars = throughput.bars()
    assert bars[9]["h"] == throughput.height - 2 and bars[0]["h"] == 0


def test_the_jobs_page_charts_the_queue_from_the_stats_route(console_app: Any, client: Any,
                                                              tmp_path: Path) -> None:
    logged_in(client)
    submit(console_app, tmp_path)
    page = client.get("/ui/jobs")
    assert page.status_code == 200
    assert b"queue depth (queued) \xc2\xb7 last hour \xc2\xb7 peak 1, now 1" in page.data
    reply = client.get("/ui/api/stats/queue")
    assert reply.status_code == 200 and reply.get_json()["buckets"][-1]["queued"] == 1


@pytest.mark.parametrize(("job", "text"), [
    ({"state": "running"}, "—"),
    ({"state": "running", "progress": None}, "—"),
    ({"state": "running", "progress": {"percent": "x", "fps": True}}, "—"),
    ({"state": "running", "progress": {"percent": 42.4, "fps": 25, "speed": 1.5, "eta_s": 75}},
     "42 % · 25 fps · 1.50x · ETA 1 min 15 s"),
    ({"state": "succeeded", "progress": {"percent": 97}}, "100 %"),
])
def test_progress_is_shown_when_present_and_a_dash_when_not(job: dict[str, Any], text: str) -> None:
    assert render.progress_text(job) == text


def test_node_fields_from_newer_masters_are_optional() -> None:
    assert render.ready_text({}) == "—"
    assert render.ready_text({"ready": False, "ready_reason": "disk_space low"}) == "no: disk_space low"
    assert render.ready_text({"ready": {"ok": True, "reason": None}}) == "yes"
    assert render.node_status({"status": "online", "draining": True}) == "draining"
    assert render.node_status({"status": "maintenance"}) == "maintenance"
    assert render.node_status({}) == "unknown"


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(["state", "queue", "node", "limit", "cursor", "x"]), _TEXT,
                             max_size=3),
       segment=_TEXT)
def test_hostile_input_to_console_routes_is_never_a_500(client: Any, query: dict[str, str],
                                                        segment: str) -> None:
    if client.get_cookie("ffrtmp_console", path="/ui") is None:
        logged_in(client)
    quoted = urllib.parse.quote(segment, safe="")
    for path, args in (("/ui/jobs", query), ("/ui/nodes", query), (f"/ui/jobs/{quoted}", None),
                       ("/ui/api/jobs", query), (f"/ui/api/jobs/{quoted}", None),
                       (f"/ui/api/nodes/{quoted}", None)):
        reply = client.get(path, query_string=args)
        assert reply.status_code < 500, (path, args, reply.data[:300])
        if reply.status_code >= 400:  # a page saying why, or the API's error envelope
            assert b'id="error-message"' in reply.data or reply.get_json()["error"]["message"]


def test_only_the_consoles_requests_open_a_session(console_app: Any, client: Any) -> None:
    """The cookie is sent only under /ui; every API request opened one anyway (a signer made
    for each agent call) until sessions were kept to the console's path."""
    logged_in(client)
    cookie = client.get_cookie("ffrtmp_console", path="/ui")
    assert cookie is not None
    with console_app.test_request_context("/api/v1/jobs",
                                          headers={"Cookie": f"ffrtmp_console={cookie.value}"}):
        assert isinstance(request_ctx.session, NullSession)
    with console_app.test_request_context("/ui/jobs",
                                          headers={"Cookie": f"ffrtmp_console={cookie.value}"}):
        assert session.get("op")  # the console's own pages still read the logged-in session
