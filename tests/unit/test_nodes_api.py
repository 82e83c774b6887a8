"""Nodes as an operator names them (id, unique id prefix, name), their readiness, their detail,
and maintenance: a drained node whose agent stopped on purpose never makes its jobs lost.

Runs on SQLite and PostgreSQL (the ``store`` behind ``api`` follows the ``database`` fixture).
"""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Api, register
from tests.unit.test_api_lifecycle import claim, result_body, submit


def node_of(api: Api, ref: str, expect: int = 200) -> Any:
    return api.get(f"/api/v1/nodes/{ref}", expect=expect).get_json()


# --- addressing ---


def test_a_node_is_named_by_its_id_a_unique_prefix_or_its_name_in_every_route(api: Api) -> None:
    node_id, _ = register(api, "ops-w1")
    for ref in (node_id, node_id[:6], "ops-w1"):
        assert node_of(api, ref)["node"]["id"] == node_id
    drained = api.post("/api/v1/nodes/ops-w1/drain").get_json()["node"]
    assert (drained["id"], drained["draining"], drained["status"]) == (node_id, True, "draining")
    assert api.post(f"/api/v1/nodes/{node_id[:5]}/undrain").get_json()["node"]["draining"] is False
    assert api.delete("/api/v1/nodes/ops-w1").get_json() == {"removed": node_id}
    assert node_of(api, node_id, 404)["error"]["code"] == "node_not_found"


def test_a_prefix_of_several_ids_is_refused_with_the_candidates(api: Api) -> None:
    ids = sorted(register(api, name)[0] for name in ("a1", "a2", "a3"))
    body = node_of(api, "n-", 409)["error"]
    assert body["code"] == "ambiguous_node"
    assert [c["id"] for c in body["details"]["candidates"]] == ids
    assert {c["name"] for c in body["details"]["candidates"]} == {"a1", "a2", "a3"}
    assert api.post("/api/v1/nodes/n-/drain", expect=409).get_json()["error"]["code"] == "ambiguous_node"
    assert all(not n["draining"] for n in api.get("/api/v1/nodes").get_json()["nodes"])


def test_a_name_wins_over_a_prefix_and_nonsense_is_a_clean_error(api: Api) -> None:
    node_id, _ = register(api, "n")  # a name that is also every id's prefix
    register(api, "other")
    assert node_of(api, "n")["node"]["id"] == node_id
    assert node_of(api, "nope", 404)["error"]["message"] == "no node nope"
    assert node_of(api, "bad%20name", 404)["error"]["code"] == "not_found"  # not a name's shape


def test_the_jobs_node_filter_takes_a_name_too(api: Api) -> None:
    job_id = submit(api)
    node_id, node = register(api, "ops-w1")
    claim(node, node_id)
    assert [j["id"] for j in api.get("/api/v1/jobs?node=ops-w1").get_json()["jobs"]] == [job_id]
    assert api.get("/api/v1/jobs?node=nobody").get_json()["jobs"] == []


# --- readiness ---


def beat(node: Api, node_id: str, **body: Any) -> Any:
    return node.post(f"/api/v1/nodes/{node_id}/heartbeat", json=body).get_json()


def test_readiness_comes_from_the_heartbeat_and_the_drain_flag(api: Api, root_logger: Any,
                                                                caplog: Any) -> None:
    node_id, node = register(api, "w1")
    assert (node_of(api, "w1")["node"]["ready"], node_of(api, "w1")["node"]["ready_reason"]) == (None, None)
    beat(node, node_id, ready={"ok": True})
    assert node_of(api, "w1")["node"]["ready"] is True
    beat(node, node_id, ready={"ok": False, "reason": "disk_space low: /w 93.8% used"})
    beat(node, node_id, ready={"ok": False, "reason": "disk_space low: /w 93.8% used"})
    shown = node_of(api, "w1")["node"]
    assert (shown["ready"], shown["ready_reason"], shown["status"]) == (
        False, "disk_space low: /w 93.8% used", "online")
    said = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert said == ["node w1 is not ready: disk_space low: /w 93.8% used"]  # once, not per beat
    api.post("/api/v1/nodes/w1/drain")
    listed = api.get("/api/v1/nodes").get_json()["nodes"][0]
    assert (listed["ready"], listed["ready_reason"]) == (False, "draining; disk_space low: /w 93.8% used")
    api.post("/api/v1/nodes/w1/undrain")
    beat(node, node_id)  # an agent that does not say keeps its last verdict
    assert node_of(api, "w1")["node"]["ready"] is False
    beat(node, node_id, ready={"ok": True, "reason": None})
    assert (node_of(api, "w1")["node"]["ready"], node_of(api, "w1")["node"]["ready_reason"]) == (True, None)


def test_a_readiness_reason_is_checked(api: Api) -> None:
    node_id, node = register(api, "w1")
    for bad in ({"reason": "x"}, {"ok": "no"}, {"ok": False, "reason": "two\nlines"},
                {"ok": False, "reason": "x" * 201}, {"ok": True, "extra": 1}):
        reply = node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={"ready": bad}, expect=422)
        assert reply.get_json()["error"]["details"]["field"].startswith("ready")


# --- detail ---


def test_show_lists_running_jobs_and_recent_violations(api: Api) -> None:
    first, second = submit(api), submit(api)
    node_id, node = register(api, "w1", slots=2, hwaccels=["vaapi"], labels={"rack": "b2"},
                             agent_version="9.9")
    a, b = sorted(claim(node, node_id, slots=2), key=lambda x: x["job_id"] != first)
    for x in (a, b):
        node.post(f"/api/v1/jobs/{x['job_id']}/start", json={"attempt_token": x["attempt_token"]})
    node.post(f"/api/v1/jobs/{first}/result", json=result_body(
        a, "failed", exit_code=1, platform_sla=False, reason="disk_full"))
    shown = node_of(api, "w1")["node"]
    assert (shown["hwaccels"], shown["labels"], shown["agent_version"]) == (["vaapi"], {"rack": "b2"}, "9.9")
    assert [(j["id"], j["state"], j["attempt"]) for j in shown["running_jobs"]] == [(second, "running", 1)]
    assert shown["running_jobs"][0]["started_at"].endswith("Z")
    [violation] = shown["violations"]
    assert (violation["job_id"], violation["reason"], violation["exit_code"]) == (first, "disk_full", 1)
    assert "running_jobs" not in api.get("/api/v1/nodes").get_json()["nodes"][0]


# --- maintenance ---


def test_maintenance_keeps_running_jobs_and_the_node_out_of_offline(api: Api, app: Any) -> None:
    job_id = submit(api)
    node_id, node = register(api, "w1")
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    refused = node.post(f"/api/v1/nodes/{node_id}/maintenance", expect=409).get_json()
    assert refused["error"]["code"] == "node_not_draining"
    api.post("/api/v1/nodes/w1/drain")
    went = node.post(f"/api/v1/nodes/{node_id}/maintenance").get_json()["node"]
    assert (went["status"], went["ready"], went["ready_reason"]) == ("maintenance", False, "maintenance")
    assert went["maintenance_since"].endswith("Z")
    store = app.extensions["ffrtmp"].store
    assert store.mark_offline(30, now=time.time() + 86400 * 7) == []  # a week away: still not lost
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "running"
    assert store.counts()["nodes"]["offline"] == 0 and store.counts()["nodes"]["maintenance"] == 1
    beat(node, node_id, running=[{"job_id": job_id, "attempt": 1}])
    back = node_of(api, "w1")["node"]
    assert (back["status"], back["draining"], back["maintenance_since"]) == ("draining", True, None)


def test_only_a_node_may_say_it_goes_into_maintenance(api: Api) -> None:
    node_id, _ = register(api, "w1")
    other_id, other = register(api, "w2")
    api.post(f"/api/v1/nodes/{node_id}/drain")
    other.post(f"/api/v1/nodes/{node_id}/maintenance", expect=403)
    api.post(f"/api/v1/nodes/{node_id}/maintenance", expect=403)  # an operator token neither
    assert node_of(api, node_id)["node"]["status"] == "draining"
    assert other_id != node_id


def test_undrain_ends_maintenance_so_a_host_that_never_returns_can_be_settled(api: Api, app: Any) -> None:
    job_id = submit(api)
    node_id, node = register(api, "w1")
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    api.post("/api/v1/nodes/w1/drain")
    node.post(f"/api/v1/nodes/{node_id}/maintenance")
    store = app.extensions["ffrtmp"].store
    later = time.time() + 3600
    assert store.mark_offline(30, now=later) == []
    shown = api.post("/api/v1/nodes/w1/undrain").get_json()["node"]
    assert (shown["status"], shown["draining"], shown["maintenance_since"]) == ("online", False, None)
    assert store.mark_offline(30, now=later) == [job_id]  # silent for an hour: offline, its job lost
    assert node_of(api, "w1")["node"]["status"] == "offline"
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a))  # a late result still settles it
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "succeeded"
