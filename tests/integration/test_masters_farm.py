"""Two real masters on one PostgreSQL: each is listed (``GET /api/v1/masters``, ``ffrtmp
masters``), one that stops goes down in the list, and ``/metrics`` and the node list are the
same from either, since both come from the store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests

from tests.conftest import (
    OPERATOR_TOKEN,
    MasterProcess,
    master_env,
    postgres_schema_url,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_cli import run_cli
from tests.integration.test_master_process import register, submit

STORE_SERIES = re.compile(r"^(ffrtmp_jobs_by_state|ffrtmp_jobs_pending|ffrtmp_nodes_by_status"
                          r"|ffrtmp_nodes_offline)\b.*$", re.MULTILINE)


def masters_of(master: MasterProcess) -> dict[str, Any]:
    reply = master.session().get(master.url + "/api/v1/masters", timeout=10)
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def store_series(master: MasterProcess) -> list[str]:
    """The series read from the store, as one master's ``/metrics`` shows them."""
    text = requests.get(master.metrics_url + "/metrics", timeout=10).text
    return sorted(m.group(0) for m in STORE_SERIES.finditer(text))


def start_pair(tmp_path: Path, database: str) -> list[MasterProcess]:
    masters = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        env = master_env(directory, FFRTMP_DATABASE=database, FFRTMP_NODE_TIMEOUT="3",
                         FFRTMP_WORKERS="2")
        masters.append(start_master(directory, env, name=f"master-{name}"))
    return masters


def test_two_masters_list_each_other_and_the_duty_holders_and_one_stopped_goes_down(
        tmp_path: Path, postgres_server: str) -> None:
    masters = start_pair(tmp_path, postgres_schema_url(postgres_server))
    a, b = masters
    ids = {m.url.removeprefix("http://") for m in masters}
    try:
        wait_until(lambda: {m["id"] for m in masters_of(a)["masters"]} == ids, 30,
                   "both masters announced")
        wait_until(lambda: {"leases", "offline"} <= set(masters_of(b)["duties"]), 30,
                   "the duties ran and name their holder")
        listing = masters_of(b)
        assert all(m["up"] and m["version"] for m in listing["masters"])
        assert {d["holder"] for d in listing["duties"].values()} <= ids
        assert {name for m in listing["masters"] for name in m["holds"]} == set(listing["duties"])
        environ = {"FFRTMP_MASTER_URL": a.url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN}
        table = run_cli(["masters"], environ)
        assert table.status == 0, table.err
        header, *rows = table.out.splitlines()
        assert header.split()[:3] == ["ID", "UP", "VERSION"] and "DUTIES" in header
        assert sorted(row.split()[0] for row in rows) == sorted(ids)
        assert all(row.split()[1] == "yes" for row in rows)
        as_json = run_cli(["masters", "--json"], environ).json()
        assert {m["id"] for m in as_json["masters"]} == ids
        stop_process(b.proc)
        b_id = b.url.removeprefix("http://")
        wait_until(lambda: not next(m for m in masters_of(a)["masters"] if m["id"] == b_id)["up"],
                   30, "the stopped master listed as down")
        wait_until(lambda: all(d["holder"] != b_id or d["at"] is None
                               for name, d in masters_of(a)["duties"].items() if name != "retention"),
                   30, "the remaining master runs the interval duties")
        assert "no" in [r.split()[1] for r in run_cli(["masters"], environ).out.splitlines()[1:]]
    finally:
        for master in masters:
            stop_process(master.proc)


def test_metrics_and_the_node_list_are_the_same_from_either_master(tmp_path: Path,
                                                                   postgres_server: str) -> None:
    masters = start_pair(tmp_path, postgres_schema_url(postgres_server))
    a, b = masters
    try:
        for i in range(5):
            submit(a if i % 2 else b, (a if i % 2 else b).session())
        node_id, node = register(b, "node-1")
        [claimed] = node.post(f"{a.url}/api/v1/nodes/{node_id}/claim", json={"slots": 1, "wait_s": 0},
                              timeout=10).json()["assignments"]
        node.post(f"{a.url}/api/v1/jobs/{claimed['job_id']}/start",
                  json={"attempt_token": claimed["attempt_token"]}, timeout=10).raise_for_status()
        seen_a = store_series(a)
        assert 'ffrtmp_jobs_by_state{state="queued"} 4.0' in seen_a
        assert 'ffrtmp_jobs_by_state{state="running"} 1.0' in seen_a
        assert 'ffrtmp_nodes_by_status{status="online"} 1.0' in seen_a
        assert seen_a == store_series(b)
        listed = [m.session().get(m.url + "/api/v1/nodes", timeout=10).json()["nodes"] for m in masters]
        assert [n["id"] for n in listed[0]] == [node_id] and listed[0] == listed[1]
    finally:
        for master in masters:
            stop_process(master.proc)
