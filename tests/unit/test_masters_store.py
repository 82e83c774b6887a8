"""The masters sharing a database: each announces itself, duties name who ran them, the
retention duty forgets masters gone for good; the operator route and the master's id."""

from __future__ import annotations

import time
from typing import Any

from ffrtmp import __version__, config
from ffrtmp.master.scheduler import DutyLoop, master_id, run_duties
from ffrtmp.master.store.sqlstore import SqlStore
from ffrtmp.settings import MasterSettings
from tests.conftest import ENROLL_TOKEN, Api, master_env
from tests.helpers import wait_until


def test_a_master_announced_twice_is_one_row_with_its_latest_sighting(store: SqlStore) -> None:
    store.announce_master("m1:8080", version="0.1.0", started_at=100.0, now=110.0)
    store.announce_master("m1:8080", version="0.2.0", started_at=100.0, now=120.0)
    store.announce_master("m2:8080", version="0.1.0", started_at=105.0, now=115.0)
    listing = store.list_masters()
    assert [(m["id"], m["version"], m["last_seen_ts"]) for m in listing["masters"]] == [
        ("m1:8080", "0.2.0", 120.0), ("m2:8080", "0.1.0", 115.0)]
    assert listing["masters"][0]["started_at"] == "1970-01-01T00:01:40.000Z"
    assert listing["duties"] == {}


def test_each_duty_granted_records_its_holder_and_a_refusal_leaves_it(store: SqlStore) -> None:
    assert store.try_duty("leases", 10, now=1000.0, holder="m1:8080")
    assert not store.try_duty("leases", 10, now=1005.0, holder="m2:8080")  # not due: m1 keeps it
    assert store.try_duty("offline", 10, now=1006.0, holder="m2:8080")
    store.probe_write(now=1007.0)  # readiness's row is no duty
    duties = store.list_masters()["duties"]
    assert duties == {"leases": {"holder": "m1:8080", "at": "1970-01-01T00:16:40.000Z"},
                      "offline": {"holder": "m2:8080", "at": "1970-01-01T00:16:46.000Z"}}
    assert store.try_duty("leases", 10, now=1010.0, holder="m2:8080")
    assert store.list_masters()["duties"]["leases"]["holder"] == "m2:8080"


def test_the_retention_duty_forgets_masters_not_seen_for_the_retention_period(
        store: SqlStore, settings: MasterSettings) -> None:
    now = time.time()
    retention = settings.retention_days * 86400
    store.announce_master("old:8080", version="0.1.0", started_at=0.0, now=now - retention - 60)
    store.announce_master("recent:8080", version="0.1.0", started_at=0.0, now=now - retention + 60)
    done = run_duties(store, settings, now, listening_since=now, holder="recent:8080")
    assert done["masters_forgotten"] == 1
    assert [m["id"] for m in store.list_masters()["masters"]] == ["recent:8080"]
    assert store.list_masters()["duties"]["retention"]["holder"] == "recent:8080"


def test_the_duty_thread_announces_its_master_and_names_it_on_the_duties_it_runs(
        store: SqlStore, settings: MasterSettings) -> None:
    loop = DutyLoop(store, settings, started_at=1234.5)
    loop.start()
    try:
        wait_until(lambda: store.list_masters()["masters"], 30, "the master's first announcement")
        first = store.list_masters()["masters"][0]["last_seen_ts"]
        wait_until(lambda: store.list_masters()["masters"][0]["last_seen_ts"] > first, 30,
                   "a second announcement within the heartbeat interval")
        wait_until(lambda: "leases" in store.list_masters()["duties"], 30, "a lease pass")
    finally:
        loop.stop()
    [master] = store.list_masters()["masters"]
    assert master["id"] == loop.master_id == master_id(settings)
    assert master["version"] == __version__ and master["started_at"] == "1970-01-01T00:20:34.500Z"
    assert store.list_masters()["duties"]["leases"]["holder"] == loop.master_id


def test_a_master_is_named_by_its_bind_address_or_its_hostname_for_a_wildcard(tmp_path: Any) -> None:
    import socket

    def named(bind: str) -> str:
        return master_id(config.load("master", {}, master_env(tmp_path, FFRTMP_MASTER_BIND=bind)))

    assert named("10.0.0.5:8080") == "10.0.0.5:8080"
    assert named("0.0.0.0:8080") == f"{socket.gethostname()}:8080"
    assert named("[::]:8443") == f"{socket.gethostname()}:8443"
    assert named("[fd00::5]:8080") == "[fd00::5]:8080"


def test_the_masters_route_lists_who_is_up_and_who_holds_each_duty(api: Api, app: Any) -> None:
    store, settings = app.extensions["ffrtmp"].store, app.extensions["ffrtmp"].settings
    now = time.time()
    store.announce_master("m1:8080", version="0.1.0", started_at=now - 100, now=now - 1)
    store.announce_master("m2:8080", version="0.1.0", started_at=now - 100,
                          now=now - settings.node_timeout - 5)
    assert store.try_duty("leases", 1, now=now, holder="m1:8080")
    assert store.try_duty("retention", 1, now=now, holder="m1:8080")
    body = api.get("/api/v1/masters").get_json()
    assert [(m["id"], m["up"], m["holds"]) for m in body["masters"]] == [
        ("m1:8080", True, ["leases", "retention"]), ("m2:8080", False, [])]
    assert body["duties"]["leases"]["holder"] == "m1:8080"
    assert "last_seen_ts" not in body["masters"][0]
    for token in (ENROLL_TOKEN, ""):  # operators only
        assert api.as_(token).get("/api/v1/masters", expect=None).status_code == 401
