"""Split jobs over the HTTP API, in-process on SQLite and PostgreSQL: submit, list, the
refusals an operator or an agent meets, and a plan result checked before anything changes."""

from __future__ import annotations

from typing import Any

from openapi_core import OpenAPI

from tests.conftest import Api, register
from tests.unit.test_api_lifecycle import claim, result_body
from tests.unit.test_openapi import SPEC_DOC, Checked
from tests.unit.test_openapi import register as register_checked
from tests.unit.test_store_split import PLAN, SUBMITTED


def submit_split(api: Api) -> str:
    job = api.post("/api/v1/jobs", json=SUBMITTED, expect=201).get_json()["job"]
    assert job["step"] == "split" and job["parent_id"] is None
    assert job["spec"]["split"] == {"segment_s": 10.0}
    return str(job["id"])


def listed(api: Api, query: str = "") -> list[dict[str, Any]]:
    return list(api.get(f"/api/v1/jobs{query}").get_json()["jobs"])


def running_plan(api: Api) -> tuple[str, str, Api, dict[str, Any]]:
    """A split job whose plan child a node has claimed and started."""
    parent_id = submit_split(api)
    node_id, node = register(api)
    [a] = claim(node, node_id, slots=8)
    node.post(f"/api/v1/jobs/{a['job_id']}/start", json={"attempt_token": a["attempt_token"]})
    return parent_id, node_id, node, a


def test_a_split_job_lists_alone_and_its_parts_on_request(api: Api) -> None:
    ordinary = api.post("/api/v1/jobs", json={**SUBMITTED, "split": {"segment_s": 0}},
                        expect=201).get_json()["job"]
    assert ordinary["step"] is None and "split" not in ordinary["spec"]
    parent_id = submit_split(api)
    assert [j["id"] for j in listed(api)] == [parent_id, ordinary["id"]]
    (plan,) = listed(api, f"?parent={parent_id}")
    assert (plan["step"], plan["parent_id"]) == ("plan", parent_id)
    assert {j["id"] for j in listed(api, "?children=1")} == {parent_id, ordinary["id"], plan["id"]}
    assert listed(api, f"?parent={ordinary['id']}") == []
    missing = api.get("/api/v1/jobs?parent=j-000000000000", expect=404).get_json()
    assert missing["error"]["code"] == "job_not_found"
    for query, field in (("?parent=x;drop", "parent"), ("?children=2", "children")):
        bad = api.get(f"/api/v1/jobs{query}", expect=422).get_json()
        assert bad["error"]["details"]["field"] == field


def test_a_submitted_step_and_a_split_of_a_live_input_are_refused(api: Api) -> None:
    step = {"kind": "sweep", "parent": "j-0123456789ab",
            "workspace": "store:///out/.ffrtmp-split-j-0123456789ab"}
    refused = api.post("/api/v1/jobs", json={**SUBMITTED, "step": step}, expect=422).get_json()
    assert refused["error"]["details"]["field"] == "step"
    assert "set by the master" in refused["error"]["message"]
    live = api.post("/api/v1/jobs", json={**SUBMITTED, "input": "rtmp://127.0.0.1/live/in"},
                    expect=422).get_json()
    assert live["error"]["details"]["field"] == "split"
    assert listed(api, "?children=1") == []


def test_a_part_refuses_cancel_and_retry_naming_its_parent(api: Api) -> None:
    parent_id = submit_split(api)
    (plan,) = listed(api, f"?parent={parent_id}")
    for action in ("cancel", "retry"):
        reply = api.post(f"/api/v1/jobs/{plan['id']}/{action}", expect=409).get_json()["error"]
        assert reply["code"] == "part_of_split" and reply["details"] == {"parent_id": parent_id}
        assert parent_id in reply["message"]
    canceled = api.post(f"/api/v1/jobs/{parent_id}/cancel").get_json()["job"]
    assert canceled["state"] == "canceled"
    again = api.post(f"/api/v1/jobs/{parent_id}/retry", expect=409).get_json()["error"]
    assert again["code"] == "not_retryable" and "submit it again" in again["message"]


def test_a_bad_plan_is_refused_and_changes_nothing(api: Api) -> None:
    parent_id, _, node, a = running_plan(api)
    url = f"/api/v1/jobs/{a['job_id']}/result"
    short = {**PLAN, "frames": 1}
    bad_cut = {**PLAN, "segments": [{**PLAN["segments"][0], "start_s": 1.5}]}
    for plan, field in ((short, "plan.frames"), (bad_cut, "plan.segments[0].start_s"),
                        ("cuts", "plan"), (None, "plan")):
        body = result_body(a, **({} if plan is None else {"plan": plan}))
        reply = node.post(url, json=body, expect=422).get_json()
        assert reply["error"]["details"]["field"] == field, reply
    shown = api.get(f"/api/v1/jobs/{a['job_id']}").get_json()["job"]
    assert shown["state"] == "running" and shown["attempts"][0]["result"] is None
    assert len(listed(api, f"?parent={parent_id}")) == 1
    node.post(url, json=result_body(a, plan=PLAN))
    node.post(url, json=result_body(a, plan=PLAN))  # delivered twice: the same answer
    parts = listed(api, f"?parent={parent_id}")
    assert [p["step"] for p in parts] == ["plan", "audio", "segment", "segment", "segment", "segment"]
    assert api.get(f"/api/v1/jobs/{a['job_id']}").get_json()["job"]["attempts"][0]["result"][
        "plan"] == PLAN


def test_only_a_plan_step_reports_a_plan(api: Api) -> None:
    _, node_id, node, a = running_plan(api)
    node.post(f"/api/v1/jobs/{a['job_id']}/result", json=result_body(a, plan=PLAN))
    [segment, *_] = claim(node, node_id, slots=8)
    node.post(f"/api/v1/jobs/{segment['job_id']}/start",
              json={"attempt_token": segment["attempt_token"]})
    url = f"/api/v1/jobs/{segment['job_id']}/result"
    reply = node.post(url, json=result_body(segment, plan=PLAN), expect=422).get_json()
    assert reply["error"]["details"]["field"] == "plan"
    assert node.post(url, json=result_body(segment)).get_json()["state"] == "succeeded"


def test_a_failed_plan_reports_no_plan_and_fails_its_parent(api: Api) -> None:
    parent_id, _, node, a = running_plan(api)
    node.post(f"/api/v1/jobs/{a['job_id']}/result",
              json=result_body(a, "failed", exit_code=1, reason="probe_failed"))
    parent = api.get(f"/api/v1/jobs/{parent_id}").get_json()["job"]
    assert parent["state"] == "failed"
    assert parent["history"][-1]["reason"] == "plan failed: probe_failed"


def test_a_split_job_matches_the_documented_shapes(app: Any) -> None:
    checked = Checked(app, OpenAPI.from_dict(SPEC_DOC))
    parent = checked.post("/api/v1/jobs", 201, json=SUBMITTED)["job"]
    (plan,) = checked.get(f"/api/v1/jobs?parent={parent['id']}")["jobs"]
    node_id, node = register_checked(checked)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1})["assignments"]
    node.post(f"/api/v1/jobs/{plan['id']}/start", json={"attempt_token": a["attempt_token"]})
    url = f"/api/v1/jobs/{plan['id']}/result"
    node.post(url, 422, json=result_body(a, plan={**PLAN, "frames": 1}))
    node.post(url, json=result_body(a, plan=PLAN))
    assert len(checked.get("/api/v1/jobs?children=1&limit=50")["jobs"]) == 7
    checked.get(f"/api/v1/jobs/{plan['id']}")
    shown = checked.get(f"/api/v1/jobs/{parent['id']}")["job"]
    assert shown["progress"]["stage"] == "encode"
    checked.post(f"/api/v1/jobs/{plan['id']}/retry", 409)
    checked.post(f"/api/v1/jobs/{parent['id']}/cancel")
