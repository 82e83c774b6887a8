"""``POST /api/v1/jobs/batch``: many submits, one commit, each answered as ``POST /jobs`` would.

In-process on SQLite and PostgreSQL. The accepted specs are queued together and in order, a
refused one (422) queues nothing and leaves the others queued, and a store that cannot write
refuses the whole batch (503) with nothing queued.
"""

from __future__ import annotations

from typing import Any

from ffrtmp.contract import MAX_BATCH
from ffrtmp.settings import MasterSettings
from tests.conftest import Api, make_app, register
from tests.unit.test_api_batches import SPEC, claim, codes
from tests.unit.test_store_errors import busy_store, error_code, write_lock  # noqa: F401 - a fixture

URL = "/api/v1/jobs/batch"


def queued(api: Api) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = api.get("/api/v1/jobs?state=queued").get_json()["jobs"]
    return jobs


def test_each_spec_is_answered_as_a_single_submit_and_the_good_ones_queue(api: Api) -> None:
    bad = {**SPEC, "queue": "nope"}
    entries = api.post(URL, json={"jobs": [SPEC, bad, "x", {**SPEC, "intent": "second"}]}
                       ).get_json()["jobs"]
    assert codes(entries) == [(201, None), (422, "invalid"), (422, "invalid"), (201, None)]
    assert entries[1]["error"]["details"] == {"field": "queue"}
    single = api.post("/api/v1/jobs", json=bad, expect=422).get_json()
    assert {k: v for k, v in entries[1].items() if k != "status"} == single
    first, second = entries[0]["job"], entries[3]["job"]
    assert first["state"] == second["state"] == "queued"
    assert [t["to"] for t in first["history"]] == ["queued"]
    assert second["intent"] == "second"
    assert {j["id"] for j in queued(api)} == {first["id"], second["id"]}
    for queued_job in (first, second):  # the answer is the job as GET /jobs/{id} shows it
        assert api.get(f"/api/v1/jobs/{queued_job['id']}").get_json()["job"] == queued_job


def test_batched_jobs_are_claimed_in_submit_order(api: Api) -> None:
    entries = api.post(URL, json={"jobs": [{**SPEC, "intent": str(i)} for i in range(5)]}
                       ).get_json()["jobs"]
    node_id, node = register(api, slots=5)
    claimed = [a["job_id"] for a in claim(node, node_id, 5)]
    assert claimed == [e["job"]["id"] for e in entries]


def test_whole_request_errors_are_json_4xx(api: Api) -> None:
    too_many = api.post(URL, json={"jobs": [SPEC] * (MAX_BATCH + 1)}, expect=422).get_json()
    assert too_many["error"]["details"] == {"field": "jobs"}
    for body in ({}, {"jobs": {}}, {"jobs": "x"}, {"jobs": [], "more": 1}, [SPEC]):
        assert api.post(URL, json=body, expect=422).get_json()["error"]["code"] == "invalid"
    assert api.post(URL, data=b"{", headers={"Content-Type": "application/json"},
                    expect=400).get_json()["error"]["code"] == "bad_request"
    assert api.post(URL, json={"jobs": []}).get_json() == {"jobs": []}
    api.as_("nobody").post(URL, json={"jobs": [SPEC]}, expect=401)
    _, node = register(api)
    node.post(URL, json={"jobs": [SPEC]}, expect=403)  # a node's credential
    assert queued(api) == []


def test_a_busy_store_refuses_the_whole_batch_and_queues_nothing(
        settings: MasterSettings, busy_store: Any) -> None:  # noqa: F811 - the fixture
    api = Api(make_app(settings, busy_store).test_client())
    with write_lock(settings.database):
        refused = api.post(URL, json={"jobs": [SPEC, SPEC]}, expect=503)
        assert error_code(refused) == "store_busy"
    assert queued(api) == []
    assert codes(api.post(URL, json={"jobs": [SPEC, SPEC]}).get_json()["jobs"]) == [(201, None)] * 2
