"""A node is its saved credential, not its name; the master reconciles what a node no longer knows.

Runs on SQLite and PostgreSQL. The app is built with a 1 s node timeout so that "silent" and
"no longer listed" are reached by waiting, without touching the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ffrtmp.master.store.errors import StateConflict
from ffrtmp.settings import MasterSettings
from tests.conftest import ENROLL_TOKEN, Api, make_app, register
from tests.helpers import wait_until
from tests.unit.test_api_lifecycle import claim, result_body, submit

NODE_TIMEOUT_S = 1.0
HEARTBEAT_S = 0.2
FACTS = {"slots": 2, "encoders": ["libx264", "aac"], "hwaccels": []}


@pytest.fixture
def api(settings: MasterSettings) -> Iterator[Api]:
    app = make_app(settings.replace(node_timeout=NODE_TIMEOUT_S, heartbeat_interval=HEARTBEAT_S))
    yield Api(app.test_client())
    app.extensions["ffrtmp"].store.close()


def enroll(api: Api, name: str, expect: int | None = None, **extra: Any) -> Any:
    return api.as_(ENROLL_TOKEN).post("/api/v1/nodes/register", json={"name": name, **FACTS, **extra},
                                      expect=expect)


def node_of(api: Api, node_id: str) -> dict[str, Any]:
    return api.get(f"/api/v1/nodes/{node_id}").get_json()["node"]


def beat(node: Api, node_id: str, running: list[dict[str, Any]] | None = None, expect: int = 200) -> Any:
    return node.post(f"/api/v1/nodes/{node_id}/heartbeat", json={"running": running or []},
                     expect=expect)


# --- identity ---


def facts(node: Api, node_id: str, name: str, expect: int | None = 200, **extra: Any) -> Any:
    return node.request("PUT", f"/api/v1/nodes/{node_id}/facts", json={"name": name, **FACTS, **extra},
                        expect=expect)


def test_a_restart_with_the_saved_credential_replaces_every_fact_and_keeps_the_identity(api: Api) -> None:
    first = enroll(api, "node-a", 201).get_json()
    node_id, node = first["node_id"], api.as_(first["credential"])
    again = facts(node, node_id, "node-a", slots=5, encoders=["libx265"], hwaccels=["vaapi"],
                  labels={"rack": "b2"}, ffmpeg_version="7.1", agent_version="9.9").get_json()
    assert again["node_id"] == node_id and "credential" not in again
    assert again["heartbeat_interval_s"] == HEARTBEAT_S
    shown = node_of(api, node_id)
    assert (shown["slots"], shown["encoders"], shown["hwaccels"], shown["labels"], shown["ffmpeg_version"],
            shown["agent_version"]) == (5, ["libx265"], ["vaapi"], {"rack": "b2"}, "7.1", "9.9")
    beat(node, node_id)  # the saved credential still works
    api.as_(ENROLL_TOKEN).request("PUT", f"/api/v1/nodes/{node_id}/facts", json={"name": "node-a", **FACTS},
                                  expect=401)  # the enrollment token is nobody's identity


def test_a_second_agent_with_a_live_name_is_refused_and_revokes_nothing(api: Api) -> None:
    node_id, node = register(api, "node-a")
    beat(node, node_id)
    refused = enroll(api, "node-a", 409).get_json()["error"]
    assert refused["code"] == "node_name_in_use"
    assert node_id in refused["message"] and "FFRTMP_NODE_NAME" in refused["message"]
    beat(node, node_id)
    assert [n["id"] for n in api.get("/api/v1/nodes").get_json()["nodes"]] == [node_id]


def test_the_name_of_a_silent_node_is_taken_over_and_its_old_credential_revoked(api: Api) -> None:
    node_id, old = register(api, "node-a")
    started = time.monotonic()
    reply = wait_until(lambda: time.monotonic() - started > NODE_TIMEOUT_S + 0.2
                       and enroll(api, "node-a", None, slots=3), 10, "the node to fall silent")
    assert reply.status_code == 200, reply.get_json()
    data = reply.get_json()
    assert data["node_id"] == node_id and node_of(api, node_id)["slots"] == 3
    beat(old, node_id, expect=401)
    beat(api.as_(data["credential"]), node_id)


def test_after_a_master_restart_a_silent_nodes_name_is_kept_for_one_node_timeout(
        api: Api, settings: MasterSettings) -> None:
    node_id, old = register(api, "node-a")
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > NODE_TIMEOUT_S + 0.2, 10, "the node to fall silent")
    restarted = make_app(settings.replace(node_timeout=NODE_TIMEOUT_S, heartbeat_interval=HEARTBEAT_S))
    # a master that just started: it heard nothing yet
    try:
        again = Api(restarted.test_client())
        assert enroll(again, "node-a", 409).get_json()["error"]["code"] == "node_name_in_use"
        beat(again.as_(old.token), node_id)  # the node reaches the new master: it was never gone
        listening = time.monotonic()
        reply = wait_until(lambda: time.monotonic() - listening > NODE_TIMEOUT_S + 0.2
                           and enroll(again, "node-a"), 10, "the node to fall silent again")
        assert reply.status_code == 200 and reply.get_json()["node_id"] == node_id
    finally:
        restarted.extensions["ffrtmp"].store.close()


def test_a_removed_nodes_name_registers_as_a_new_node(api: Api) -> None:
    node_id, node = register(api, "node-a")
    api.delete(f"/api/v1/nodes/{node_id}")
    facts(node, node_id, "node-a", 401)  # the agent then enrolls again
    data = enroll(api, "node-a", 201).get_json()
    assert data["node_id"] != node_id


def test_a_credential_cannot_rename_its_node_onto_another_nodes_name(api: Api) -> None:
    a_id, _ = register(api, "node-a")
    b_id, b = register(api, "node-b")
    refused = facts(b, b_id, "node-a", 409).get_json()["error"]
    assert refused["code"] == "node_name_in_use"
    facts(b, b_id, "node-c")
    assert node_of(api, b_id)["name"] == "node-c"
    assert node_of(api, a_id)["name"] == "node-a"


def test_concurrent_registrations_of_one_name_make_one_node(api: Api) -> None:
    store = api.client.application.extensions["ffrtmp"].store
    outcomes: list[str] = []

    def one() -> None:
        try:
            store.register_node(name="twin", **FACTS, labels={}, ffmpeg_version="", agent_version="",
                                live_s=NODE_TIMEOUT_S)
            outcomes.append("registered")
        except StateConflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["node_name_in_use"] * 5 + ["registered"]


# --- reconciliation ---


def started_job(api: Api, node: Api, node_id: str) -> dict[str, Any]:
    submit(api)
    [a] = claim(node, node_id)
    node.post(f"/api/v1/jobs/{a['job_id']}/start", json={"attempt_token": a["attempt_token"]})
    return a


def state(api: Api, job_id: str) -> str:
    return api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["state"]


def test_a_running_attempt_its_node_stops_listing_ends_lost_and_frees_the_slot(api: Api) -> None:
    node_id, node = register(api, "node-a", slots=1)
    a = started_job(api, node, node_id)
    beat(node, node_id)  # the first heartbeat without it starts the clock; it never ends it
    assert state(api, a["job_id"]) == "running"
    submit(api)
    assert claim(node, node_id) == []  # the one slot is still taken
    wait_until(lambda: beat(node, node_id).status_code == 200 and state(api, a["job_id"]) == "lost", 15,
               "the unlisted attempt to be reconciled")
    job = api.get(f"/api/v1/jobs/{a['job_id']}").get_json()["job"]
    assert job["attempts"][0]["state"] == "lost"
    assert "no longer" in job["history"][-1]["reason"] and job["history"][-1]["node_id"] == node_id
    assert len(claim(node, node_id)) == 1  # the slot is free again
    late = node.post(f"/api/v1/jobs/{a['job_id']}/result", json=result_body(a)).get_json()
    assert late["state"] == "succeeded"  # a late result is still taken, as for any lost job


def test_an_attempt_listed_again_is_kept_and_an_assigned_one_is_left_to_its_lease(api: Api) -> None:
    node_id, node = register(api, "node-a", slots=2)
    a = started_job(api, node, node_id)
    submit(api)
    [assigned] = claim(node, node_id)  # never confirmed: the lease decides, not reconciliation
    listed = [{"job_id": a["job_id"], "attempt": 1}]
    beat(node, node_id)
    started = time.monotonic()
    while time.monotonic() - started < (HEARTBEAT_S + NODE_TIMEOUT_S) * 2:
        beat(node, node_id, listed)
        time.sleep(HEARTBEAT_S)
    beat(node, node_id)  # unlisted once more: the clock starts again from here
    assert state(api, a["job_id"]) == "running"
    assert state(api, assigned["job_id"]) == "assigned"
