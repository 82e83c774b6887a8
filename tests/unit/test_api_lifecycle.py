"""The job lifecycle over the HTTP API, in-process on a real SQLite store."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import ENROLL_TOKEN, Api, register

SPEC = {"input": "testsrc://?duration=2&size=320x240&rate=25",
        "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}]}


def submit(api: Api, spec: dict[str, Any] | None = None, **fields: Any) -> str:
    body = {**(spec or SPEC), **fields}
    return api.post("/api/v1/jobs", json=body, expect=201).get_json()["job"]["id"]


def claim(node: Api, node_id: str, slots: int = 1, **kw: Any) -> list[dict[str, Any]]:
    return node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": slots, **kw}).get_json()["assignments"]


def result_body(assignment: dict[str, Any], outcome: str = "succeeded", **kw: Any) -> dict[str, Any]:
    return {"attempt_token": assignment["attempt_token"], "outcome": outcome, "exit_code": 0,
            "platform_sla": True, "reason": "completed_successfully", **kw}


def test_full_lifecycle_records_every_transition(api: Api) -> None:
    job_id = submit(api, intent="demo")
    node_id, node = register(api)
    [a] = claim(node, node_id)
    assert a["job_id"] == job_id and a["attempt"] == 1 and a["spec"]["intent"] == "demo"
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "assigned"
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    node.post(f"/api/v1/nodes/{node_id}/heartbeat",
              json={"running": [{"job_id": job_id, "attempt": 1, "progress": {"percent": 50.0}}]})
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["state"] == "running" and job["progress"] == {"percent": 50.0,
                                                             "updated_at": job["progress"]["updated_at"]}
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a, log_tail="frame=50\n"))
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["state"] == "succeeded"
    assert [(h["from"], h["to"]) for h in job["history"]] == [
        (None, "queued"), ("queued", "assigned"), ("assigned", "running"), ("running", "succeeded")]
    assert all(h["at"].endswith("Z") and h["reason"] for h in job["history"])
    assert job["attempts"][0]["result"]["exit_code"] == 0
    assert api.get(f"/api/v1/jobs/{job_id}/logs").get_json()["log"] == "frame=50\n"


def test_duplicate_result_is_idempotent_and_conflicting_one_is_409(api: Api) -> None:
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    first = node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a)).get_json()
    again = node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a)).get_json()
    assert first == again == {"job_id": job_id, "attempt": 1, "state": "succeeded"}
    other = node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a, "failed"), expect=409)
    assert other.get_json()["error"]["code"] == "result_conflict"


def test_retry_fences_the_old_token(api: Api) -> None:
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a, "failed", exit_code=1))
    assert api.post(f"/api/v1/jobs/{job_id}/retry").get_json()["job"]["state"] == "queued"
    [b] = claim(node, node_id)
    assert b["attempt"] == 2 and b["attempt_token"] != a["attempt_token"]
    stale = node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]},
                      expect=409)
    assert stale.get_json()["error"]["code"] == "stale_attempt"
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a, "succeeded", exit_code=0),
              expect=409)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": b["attempt_token"]})
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(b))
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "succeeded"


def test_retry_refuses_running_and_succeeded_jobs(api: Api) -> None:
    job_id = submit(api)
    reply = api.post(f"/api/v1/jobs/{job_id}/retry", expect=409).get_json()
    assert reply["error"]["code"] == "not_retryable"


def test_dispatch_order_is_queue_then_priority_then_fifo(api: Api) -> None:
    low = submit(api, queue="default", priority="low")
    batch_high = submit(api, queue="batch", priority="high")
    default_high = submit(api, queue="default", priority="high")
    live_low = submit(api, queue="live", priority="low")
    default_high_2 = submit(api, queue="default", priority="high")
    node_id, node = register(api, slots=8)
    order = [a["job_id"] for a in claim(node, node_id, slots=8)]
    assert order == [live_low, default_high, default_high_2, low, batch_high]


def test_capability_skip_does_not_block_jobs_behind(api: Api) -> None:
    gpu_job = submit(api, requires=["h264_nvenc"])
    cpu_job = submit(api)
    cpu_id, cpu = register(api, "cpu-node")
    assert [a["job_id"] for a in claim(cpu, cpu_id, slots=2)] == [cpu_job]
    gpu_id, gpu = register(api, "gpu-node", encoders=["libx264", "aac", "h264_nvenc"])
    assert [a["job_id"] for a in claim(gpu, gpu_id, slots=2)] == [gpu_job]


def test_claim_never_exceeds_free_or_registered_slots(api: Api) -> None:
    for _ in range(5):
        submit(api)
    node_id, node = register(api)  # 2 slots
    assert len(claim(node, node_id, slots=1)) == 1
    assert len(claim(node, node_id, slots=5)) == 1
    assert claim(node, node_id, slots=5) == []


def test_cancel_queued_is_immediate_and_running_goes_through_heartbeat(api: Api) -> None:
    queued = submit(api)
    assert api.post(f"/api/v1/jobs/{queued}/cancel").get_json()["job"]["state"] == "canceled"
    api.post(f"/api/v1/jobs/{queued}/cancel", expect=409)
    running = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{running}/start", json={"attempt_token": a["attempt_token"]})
    job = api.post(f"/api/v1/jobs/{running}/cancel").get_json()["job"]
    assert job["state"] == "running" and job["cancel_requested"]
    beat = node.post(f"/api/v1/nodes/{node_id}/heartbeat",
                     json={"running": [{"job_id": running, "attempt": 1}]}).get_json()
    assert beat["cancel"] == [{"job_id": running, "attempt": 1}]
    node.post(f"/api/v1/jobs/{running}/result",
              json=result_body(a, "canceled", exit_code=143, reason="canceled"))
    assert api.get(f"/api/v1/jobs/{running}").get_json()["job"]["state"] == "canceled"


def test_canceled_assignment_cannot_start(api: Api) -> None:
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    api.post(f"/api/v1/jobs/{job_id}/cancel")
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]}, expect=409)


def test_drain_stops_claims_and_heartbeat_reports_it(api: Api) -> None:
    submit(api)
    node_id, node = register(api)
    api.post(f"/api/v1/nodes/{node_id}/drain")
    assert claim(node, node_id) == []
    beat = node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={}).get_json()
    assert beat["drain"] is True and beat["heartbeat_interval_s"] > 0
    api.post(f"/api/v1/nodes/{node_id}/undrain")
    assert len(claim(node, node_id)) == 1


def test_reregistration_keeps_id_and_updates_capabilities(api: Api) -> None:
    node_id, old = register(api, encoders=["libx264"])
    again = old.request("PUT", f"/api/v1/nodes/{node_id}/facts",  # at every agent start
                        json={"name": "node-a", "encoders": ["libx264", "libx265"], "slots": 4})
    assert again.get_json()["node_id"] == node_id  # a node is its credential
    node = api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]
    assert node["encoders"] == ["libx264", "libx265"] and node["slots"] == 4
    old.post(f"/api/v1/nodes/{node_id}/heartbeat", json={})


def test_node_removal_refused_while_running(api: Api) -> None:
    submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    api.delete(f"/api/v1/nodes/{node_id}", expect=409)
    node.post(f"/api/v1/jobs/{a['job_id']}/start", json={"attempt_token": a["attempt_token"]})
    node.post(f"/api/v1/jobs/{a['job_id']}/result", json=result_body(a))
    api.delete(f"/api/v1/nodes/{node_id}")
    api.get(f"/api/v1/nodes/{node_id}", expect=404)


def test_lease_expiry_requeues_unconfirmed_assignment(api: Api, app: Any) -> None:
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    store = app.extensions["ffrtmp"].store
    assert store.expire_leases(now=time.time() + 1) == []
    assert store.expire_leases(now=time.time() + 3600) == [job_id]
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "queued"
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]}, expect=409)
    [b] = claim(node, node_id)
    assert b["attempt"] == 2


def test_offline_node_loses_running_jobs_and_late_result_is_accepted(api: Api, app: Any) -> None:
    job_id = submit(api)
    node_id, node = register(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{job_id}/start", json={"attempt_token": a["attempt_token"]})
    store = app.extensions["ffrtmp"].store
    assert store.mark_offline(30, now=time.time() + 60) == [job_id]
    assert api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]["status"] == "offline"
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"] == "lost"
    assert claim(node, node_id) == []  # a lost job is never re-run by itself
    node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={})
    assert api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]["status"] == "online"
    node.post(f"/api/v1/jobs/{job_id}/result", json=result_body(a))
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["state"] == "succeeded"
    assert "late result" in job["history"][-1]["reason"]


def test_retention_purges_old_finished_jobs_only(api: Api, app: Any) -> None:
    done = submit(api)
    api.post(f"/api/v1/jobs/{done}/cancel")
    waiting = submit(api)
    store = app.extensions["ffrtmp"].store
    assert store.purge_finished(7, now=time.time() + 6 * 86400) == 0
    assert store.purge_finished(7, now=time.time() + 8 * 86400) == 1
    api.get(f"/api/v1/jobs/{done}", expect=404)
    api.get(f"/api/v1/jobs/{waiting}")


def test_duty_runs_once_per_interval(app: Any) -> None:
    store = app.extensions["ffrtmp"].store
    now = time.time()
    assert store.try_duty("x", 10, now=now) is True
    assert store.try_duty("x", 10, now=now + 1) is False
    assert store.try_duty("x", 10, now=now + 11) is True


def test_list_jobs_filters_and_paginates(api: Api) -> None:
    ids = [submit(api) for _ in range(5)]
    api.post(f"/api/v1/jobs/{ids[0]}/cancel")
    page = api.get("/api/v1/jobs?limit=2").get_json()
    assert [j["id"] for j in page["jobs"]] == ids[:-3:-1]
    rest = api.get(f"/api/v1/jobs?limit=10&cursor={page['next_cursor']}").get_json()
    assert [j["id"] for j in rest["jobs"]] == ids[2::-1] and rest["next_cursor"] is None
    canceled = api.get("/api/v1/jobs?state=canceled").get_json()["jobs"]
    assert [j["id"] for j in canceled] == [ids[0]]


def test_enrollment_token_is_required_to_register(api: Api) -> None:
    api.as_("wrong-token-xxxxxxxxxxxx").post("/api/v1/nodes/register",
                                             json={"name": "x", "slots": 1}, expect=401)
    api.as_(ENROLL_TOKEN).post("/api/v1/nodes/register", json={"name": "x", "slots": 1}, expect=201)
