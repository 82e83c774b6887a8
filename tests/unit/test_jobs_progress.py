"""Progress between heartbeats: the agent's report, how the master keeps it, and what jobs show.

Through the real Flask app on each database (SQLite and PostgreSQL): several masters on one
PostgreSQL read the same jobs table, so a report one master stored is what another shows.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from ffrtmp.cli import render
from tests.conftest import Api, register
from tests.unit.test_api_outputs import report, running_job

FIGURES = {"percent": 42.0, "out_time_s": 4.2, "fps": 25.0, "speed": 1.01, "frame": 105, "eta_s": 5.7}


def progress(node: Api, node_id: str, items: list[dict[str, Any]], expect: int = 200) -> Any:
    return node.post(f"/api/v1/nodes/{node_id}/progress", json={"running": items},
                     expect=expect).get_json()


def node_of(api: Api) -> str:
    return str(api.get("/api/v1/nodes").get_json()["nodes"][0]["id"])


def test_a_report_is_stored_for_the_current_attempt_with_the_masters_time(api: Api) -> None:
    job_id, node, a = running_job(api)
    before = time.time()
    reply = progress(node, node_of(api), [{"job_id": job_id, "attempt": a["attempt"], "progress": FIGURES}])
    assert reply == {"stored": 1}
    shown = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["progress"]
    stamp = datetime.fromisoformat(shown.pop("updated_at").replace("Z", "+00:00")).timestamp()
    assert shown == FIGURES
    assert before - 0.01 <= stamp <= time.time() + 0.01


def test_a_report_for_an_old_attempt_or_an_ended_job_is_skipped_not_refused(api: Api) -> None:
    job_id, node, a = running_job(api)
    node_id = node_of(api)
    stale = progress(node, node_id, [{"job_id": job_id, "attempt": a["attempt"] + 1, "progress": FIGURES},
                                     {"job_id": "j-missing", "attempt": 1, "progress": FIGURES}])
    assert stale == {"stored": 0}
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["progress"] is None
    report(node, job_id, a, outcome="failed", exit_code=1, reason="exited_nonzero")
    late = progress(node, node_id, [{"job_id": job_id, "attempt": a["attempt"], "progress": FIGURES}])
    assert late == {"stored": 0}


def test_another_nodes_attempt_is_not_touched(api: Api) -> None:
    job_id, _node, a = running_job(api)
    other_id, other = register(api, "node-b")
    assert progress(other, other_id, [{"job_id": job_id, "attempt": a["attempt"],
                                       "progress": FIGURES}]) == {"stored": 0}
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["progress"] is None
    # and a node cannot report as another one, nor an operator as a node
    assert other.post(f"/api/v1/nodes/{_other(api, other_id)}/progress", json={"running": []},
                      expect=403).get_json()["error"]["code"] == "forbidden"
    assert api.post(f"/api/v1/nodes/{other_id}/progress", json={"running": []},
                    expect=403).get_json()["error"]["code"] == "forbidden"


def _other(api: Api, node_id: str) -> str:
    return next(n["id"] for n in api.get("/api/v1/nodes").get_json()["nodes"] if n["id"] != node_id)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "running"),
    ({"running": "x"}, "running"),
    ({"running": [{"job_id": "j-1"}]}, "running[0].attempt"),
    ({"running": [{"job_id": "j-1", "attempt": 1, "progress": {"percent": {"deep": 1}}}]},
     "running[0].progress.percent"),
    ({"running": [{"job_id": "j-1", "attempt": 1, "progress": {}, "extra": 1}]}, "running[0].extra"),
    ({"running": [{"job_id": "j-1", "attempt": 1}] * 257}, "running"),
])
def test_a_bad_report_is_a_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    node_id, node = register(api)
    error = node.post(f"/api/v1/nodes/{node_id}/progress", json=body, expect=422).get_json()["error"]
    assert error["details"]["field"] == field


def test_a_succeeded_job_reads_100_percent_though_its_last_report_said_less(api: Api) -> None:
    job_id, node, a = running_job(api)
    progress(node, node_of(api), [{"job_id": job_id, "attempt": a["attempt"],
                                   "progress": {**FIGURES, "percent": 92.0}}])
    report(node, job_id, a)
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["progress"]["percent"] == 100.0 and job["progress"]["eta_s"] == 0.0
    assert job["progress"]["fps"] == FIGURES["fps"]  # the last figures are kept
    assert " 100.0% " in render.bar(job)


def test_a_heartbeats_progress_is_stamped_too(api: Api) -> None:
    job_id, node, a = running_job(api)
    node.post(f"/api/v1/nodes/{node_of(api)}/heartbeat",
              json={"running": [{"job_id": job_id, "attempt": a["attempt"], "progress": FIGURES}]})
    shown = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["progress"]
    assert shown["percent"] == 42.0 and isinstance(shown["updated_at"], str)


def test_jobs_and_their_attempts_name_their_node(api: Api) -> None:
    job_id, _node, _a = running_job(api)
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]
    assert job["node_name"] == "node-a" and job["attempts"][0]["node_name"] == "node-a"
    listed = api.get("/api/v1/jobs", query_string={"state": "running"}).get_json()["jobs"]
    assert [j["node_name"] for j in listed] == ["node-a"]
    queued = api.post("/api/v1/jobs", json=_spec(api, job_id), expect=201).get_json()["job"]
    assert queued["node_name"] is None


def _spec(api: Api, job_id: str) -> dict[str, Any]:
    spec: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["spec"]
    return spec


def test_a_report_to_one_master_is_seen_at_once_by_another_on_the_same_postgresql(
        postgres_server: str, tmp_path: Any) -> None:
    """Several masters serve one farm on PostgreSQL: the figures live in the shared jobs table,
    not in any master's memory."""
    from ffrtmp import config
    from tests.conftest import make_app, master_env, postgres_schema_url

    url = postgres_schema_url(postgres_server)
    apps = [make_app(config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=url)))
            for _ in range(2)]
    try:
        first, second = (Api(app.test_client()) for app in apps)
        job_id, node, a = running_job(first)
        progress(node, node_of(first), [{"job_id": job_id, "attempt": a["attempt"], "progress": FIGURES}])
        shown = second.get(f"/api/v1/jobs/{job_id}").get_json()["job"]["progress"]
        assert shown["percent"] == FIGURES["percent"] and "updated_at" in shown
    finally:
        for app in apps:
            app.extensions["ffrtmp"].store.close()
