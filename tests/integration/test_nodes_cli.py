"""``ffrtmp nodes …`` against a real master: a node named by id, prefix or name; the ready column;
``show``'s detail; ``drain --wait`` until drained (exit 0) or the deadline (exit 1)."""

from __future__ import annotations

import time

from tests.conftest import MasterProcess
from tests.helpers import wait_until
from tests.integration.test_cli import Node, Ops, in_thread


def test_a_node_is_named_by_name_or_unique_prefix_in_every_command(ops: Ops, master: MasterProcess) -> None:
    node = Node(master, "ops-w1")
    assert ops("nodes", "drain", node.name).out == f"{node.id}: draining\n"
    assert ops("nodes", "show", node.name).out.splitlines()[1].split()[:3] == [node.id, node.name, "draining"]
    assert ops("nodes", "undrain", node.id[:8], "--json").json()["node"]["draining"] is False
    assert ops("nodes", "remove", node.name).out == f"{node.id}: removed\n"
    assert ops("nodes", "show", node.name, expect=1).err == f"ffrtmp: no node {node.name} (HTTP 404)\n"


def test_an_ambiguous_prefix_lists_the_candidates_and_exits_1(ops: Ops, master: MasterProcess) -> None:
    nodes = [Node(master, "amb") for _ in range(2)]
    refused = ops("nodes", "drain", "n-", expect=1)
    lines = refused.err.splitlines()
    assert lines[0].startswith("ffrtmp: 'n-' is the prefix of ") and lines[0].endswith("(HTTP 409)")
    for node in nodes:
        assert f"  {node.id}  {node.name}" in lines[1:]
    assert not any(ops.api("GET", f"/api/v1/nodes/{n.id}")["node"]["draining"] for n in nodes)


def test_list_shows_the_ready_column_and_its_reason(ops: Ops, master: MasterProcess) -> None:
    node = Node(master, "disk")
    node.post(f"/api/v1/nodes/{node.id}/heartbeat",
              {"ready": {"ok": False, "reason": "disk_space low: /w 93.8% used"}})
    table = ops("nodes", "list").out.splitlines()
    [row] = [line for line in table if line.startswith(node.id)]
    assert row.split()[2:4] == ["online", "no"] and row.endswith("disk_space low: /w 93.8% used")
    ops("nodes", "drain", node.name)
    [row] = [line for line in ops("nodes", "list").out.splitlines() if line.startswith(node.id)]
    assert row.split()[2:4] == ["draining", "no"] and row.endswith("draining; disk_space low: /w 93.8% used")
    node.post(f"/api/v1/nodes/{node.id}/heartbeat", {"ready": {"ok": True}})
    ops("nodes", "undrain", node.name)
    [row] = [line for line in ops("nodes", "list").out.splitlines() if line.startswith(node.id)]
    assert row.split()[2:4] == ["online", "yes"]


def test_show_lists_facts_running_jobs_and_recent_violations(ops: Ops, master: MasterProcess) -> None:
    failed, running = ops.submit(), ops.submit()
    node = Node(master, "detail")
    a = node.claim()
    node.start(a)
    node.result(a, "failed", exit_code=1, platform_sla=False, reason="disk_full")
    b = node.claim()
    node.start(b)
    node.progress(b, percent=42.0)
    out = ops("nodes", "show", node.name).out
    for fact in ("encoders    2: aac, libx264", "hwaccels    -", "slots       1 (1 busy)", "agent       -"):
        assert f"  {fact}\n" in out, fact
    jobs = out.split("running jobs (1)\n")[1].split("\n\n")[0].splitlines()
    assert jobs[1].split()[:3] == [b["job_id"], "running", "1"] and jobs[1].endswith("42 %")
    violations = out.split("recent violations (1)\n")[1].splitlines()
    assert violations[1].split()[1:] == [a["job_id"], "1", "1", "disk_full"]
    assert {a["job_id"], b["job_id"]} == {failed, running}
    node.result(b, "succeeded", exit_code=0)


def test_drain_wait_returns_0_once_the_running_job_ends(ops: Ops, master: MasterProcess) -> None:
    ops.submit()
    node = Node(master, "wait")
    a = node.claim()
    node.start(a)
    thread, done = in_thread(lambda: ops("nodes", "drain", node.name, "--wait", "--deadline", "1m"))
    wait_until(lambda: ops.api("GET", f"/api/v1/nodes/{node.id}")["node"]["draining"], 10, "drained")
    node.result(a, "succeeded", exit_code=0)
    thread.join(20)
    [run] = done
    assert run.out == f"{node.id}: drained\n"
    lines = run.err.splitlines()
    assert lines[0] == f"{node.name} ({node.id}): draining; waiting up to 1:00 for its running jobs to end"
    assert lines[1].startswith(f"{node.name}: 1 job(s) still running: {a['job_id']}")


def test_drain_wait_exits_1_at_the_deadline_and_the_node_stays_drained(ops: Ops,
                                                                      master: MasterProcess) -> None:
    ops.submit()
    node = Node(master, "late")
    a = node.claim()
    node.start(a)
    began = time.monotonic()
    run = ops("nodes", "drain", node.name, "--wait", "--deadline", "2s", expect=1)
    assert 2 <= time.monotonic() - began < 10
    assert run.out == ""
    assert run.err.splitlines()[-1] == (f"ffrtmp: deadline passed: {node.name} still has 1 running "
                                        "job(s); it stays drained")
    assert ops.api("GET", f"/api/v1/nodes/{node.id}")["node"]["draining"] is True
    assert ops("nodes", "drain", node.name, "--deadline", "soon", expect=2).status == 2
    node.result(a, "succeeded", exit_code=0)
