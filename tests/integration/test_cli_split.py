"""The CLI's views of a split job against a real master (gunicorn, SQLite).

No agent runs: a node speaks the agent protocol by hand (``tests.integration.test_cli.Node``),
so each test decides when a part claims, progresses, fails or succeeds, and the CLI's list,
show and watch are checked against what the master derived for the parent at that moment.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from tests.integration.test_cli import Node, Ops, Run, in_thread
from tests.processes import OPERATOR_TOKEN, MasterProcess, start_master, stop_process, wait_until

SEGMENTS = 2


@pytest.fixture(scope="module")
def split_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MasterProcess]:
    process = start_master(tmp_path_factory.mktemp("master"))
    yield process
    stop_process(process.proc)


@pytest.fixture
def farm(split_master: MasterProcess, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Ops]:
    environ = {"FFRTMP_MASTER_URL": split_master.url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
               "FFRTMP_CONFIG": str(tmp_path / "no-cli.env")}
    ops = Ops(split_master, environ)
    unsettled = "queued,assigned,running,failed,lost"  # a failed split's parts may still be queued
    for job in ops.api("GET", "/api/v1/jobs", params={"state": unsettled, "limit": 500})["jobs"]:
        ops.session.post(f"{split_master.url}/api/v1/jobs/{job['id']}/cancel", timeout=10)
    yield ops
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- master output ---\n{split_master.output()}")


def submit_split(ops: Ops) -> str:
    media = Path(ops.master.env["FFRTMP_MEDIA_ROOTS"])
    (media / "in").mkdir(exist_ok=True)
    (media / "in" / "film.mp4").write_bytes(b"not probed: no agent runs here")
    run = ops("jobs", "submit", "--input", f"file://{media}/in/film.mp4",
              "--output", f"file://{media}/out/film-720p.mp4", "--preset", "h264-720p",
              "--output", f"file://{media}/out/film-480p.mp4", "--preset", "h264-480p",
              "--split-s", "10", "--intent", "film")
    return run.out.strip()


def parts(ops: Ops, parent_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ops.api("GET", "/api/v1/jobs", params={"parent": parent_id})["jobs"]
    return found


def plan_result(segments: int = SEGMENTS) -> dict[str, Any]:
    cuts = [{"start_s": f"{10 * i}.000000", "frames": 250, "duration_s": 10.0} for i in range(segments)]
    return {"segments": cuts, "audio": True, "duration_s": 10.0 * segments, "frames": 250 * segments}


def parent(ops: Ops, parent_id: str) -> dict[str, Any]:
    job: dict[str, Any] = ops.api("GET", f"/api/v1/jobs/{parent_id}")["job"]
    return job


def run_parts_until(ops: Ops, node: Node, parent_id: str, state: str) -> dict[str, Any]:
    """Run the parts the master hands out, one by one, until the parent reaches ``state``."""
    for _ in range(2 * SEGMENTS + 4):
        job = parent(ops, parent_id)
        if job["state"] == state:
            return job
        run_part(node, exit_code=0)
    raise AssertionError(f"{parent_id} never got {state}: {parent(ops, parent_id)}")


def run_part(node: Node, outcome: str = "succeeded", **extra: Any) -> dict[str, Any]:
    """Claim the next part this node may take, start it and report it."""
    a = node.claim()
    node.start(a)
    node.result(a, outcome, **extra)
    return a


def planned(ops: Ops, node: Node) -> str:
    """A split job whose plan has succeeded: its segments and audio are queued."""
    parent_id = submit_split(ops)
    run_part(node, exit_code=0, plan=plan_result())
    wait_until(lambda: len(parts(ops, parent_id)) == 2 + SEGMENTS, 20, "the segments and the audio")
    return parent_id


def show(ops: Ops, job_id: str) -> list[str]:
    lines: list[str] = ops("jobs", "show", job_id).out.splitlines()
    return lines


def test_list_shows_parents_and_their_parts_only_when_asked(farm: Ops) -> None:
    parent_id = submit_split(farm)
    [plan] = parts(farm, parent_id)
    assert (plan["step"], plan["parent_id"]) == ("plan", parent_id)
    top = farm("jobs", "list").out.splitlines()
    assert top[0].split() == ["ID", "STATE", "QUEUE", "PRIORITY", "NODE", "PROGRESS", "INTENT", "CREATED"]
    ids = [row.split()[0] for row in top[1:]]
    assert parent_id in ids and plan["id"] not in ids
    listed = farm("jobs", "list", "--parent", parent_id).out.splitlines()
    assert listed[0].split() == ["ID", "STEP", "INDEX", "STATE", "NODE", "ATTEMPT", "PROGRESS", "REASON"]
    assert [row.split()[:4] for row in listed[1:]] == [[plan["id"], "plan", "-", "queued"]]
    assert farm("jobs", "list", "--parent", parent_id, "--json").json() == farm.api(
        "GET", "/api/v1/jobs", params={"parent": parent_id, "limit": 100})
    every = farm("jobs", "list", "--children").out.splitlines()
    assert every[0].split()[:4] == ["ID", "PARENT", "STEP", "STATE"]
    rows = {row.split()[0]: row.split()[1:3] for row in every[1:]}
    assert rows[parent_id] == ["-", "split"] and rows[plan["id"]] == [parent_id, "plan"]
    assert farm("jobs", "list", "--children", "--parent", parent_id, expect=2).out == ""


def test_submit_split_s_twice_is_a_usage_error(farm: Ops, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text('{"input": "in/film.mp4", "outputs": [], "split": {"segment_s": 60}}')
    before = farm.newest_job()
    run = farm("jobs", "submit", "--spec", str(spec), "--split-s", "30", expect=2)
    assert "already has split" in run.err and farm.newest_job() == before


def test_show_of_a_parent_has_the_split_and_its_parts(farm: Ops) -> None:
    node = Node(farm.master, "split-show")
    parent_id = planned(farm, node)
    a = node.claim()
    node.start(a)
    node.progress(a, percent=50.0)
    job = wait_until(lambda: (j := parent(farm, parent_id))["progress"]["percent"] > 2 and j, 20,
                     "the parent's progress to include the segment's")
    lines = show(farm, parent_id)
    assert lines[0] == f"job {parent_id}: running"
    done = job["progress"]["segments_done"]
    assert f"  split     segments of 10 s, stage encode, {done}/{SEGMENTS} segments done" in lines
    table = lines[lines.index("  parts:") + 1:]
    assert table[0].split()[:4] == ["ID", "STEP", "INDEX", "STATE"]
    rows = {row.split()[0]: row.split()[1:] for row in table[1:]}
    assert rows[a["job_id"]][2:4] == ["running", node.id]
    assert sorted(r[:2] for r in rows.values()) == [
        ["audio", "-"], ["plan", "-"], ["segment", "0"], ["segment", "1"]]
    assert f"  part of   {parent_id} (audio)" in show(farm, a["job_id"])  # claimed first
    segment = next(i for i, r in rows.items() if r[:2] == ["segment", "1"])
    assert f"  part of   {parent_id} (segment 1)" in show(farm, segment)
    assert farm("jobs", "show", parent_id, "--json").json() == farm.api("GET", f"/api/v1/jobs/{parent_id}")


def test_a_failed_part_shows_its_reason_and_watch_ends_with_the_parent(farm: Ops) -> None:
    node = Node(farm.master, "split-fail")
    parent_id = planned(farm, node)
    out, err = io.StringIO(), io.StringIO()
    thread, done = in_thread(lambda: Run(cli.main(["jobs", "watch", parent_id], env=Env(
        stdout=out, stderr=err, environ=farm.environ)), "", ""))
    wait_until(lambda: f"segments 0/{SEGMENTS}" in err.getvalue(), 20, "watch to show the segments")
    failed = run_part(node, "failed", exit_code=1, reason="exited_nonzero: broken seam")
    thread.join(20)
    assert done and done[0].status == 1
    assert any(line.startswith(f"{parent_id} failed") for line in err.getvalue().splitlines())
    text = out.getvalue()
    assert text.startswith(f"job {parent_id}: failed\n") and "  parts:" in text
    [row] = [line for line in text.splitlines() if line.strip().startswith(failed["job_id"])]
    assert row.split()[3] == "failed" and row.endswith("exited_nonzero: broken seam")
    listed = farm("jobs", "list", "--parent", parent_id).out
    assert "exited_nonzero: broken seam" in listed


def test_retry_and_watch_of_a_parent_to_success(farm: Ops) -> None:
    node = Node(farm.master, "split-retry")
    parent_id = planned(farm, node)
    run_part(node, "failed", exit_code=1, reason="exited_nonzero: once")
    wait_until(lambda: parent(farm, parent_id)["state"] == "failed", 20, "the parent to fail")
    assert farm("jobs", "retry", parent_id).out.startswith(f"{parent_id}: ")
    out, err = io.StringIO(), io.StringIO()
    thread, done = in_thread(lambda: Run(cli.main(["jobs", "watch", parent_id], env=Env(
        stdout=out, stderr=err, environ=farm.environ)), "", ""))
    run_parts_until(farm, node, parent_id, "succeeded")  # the rest of the parts, then the stitch
    thread.join(20)
    assert done and done[0].status == 0, err.getvalue()
    assert f"segments {SEGMENTS}/{SEGMENTS}" in err.getvalue()
    assert out.getvalue().startswith(f"job {parent_id}: succeeded\n")
    steps = [row.split()[1] for row in out.getvalue().split("  parts:\n")[1].splitlines()[1:]]
    assert sorted(steps) == sorted(["plan", "segment", "segment", "audio", "stitch"])


def test_cancel_of_a_parent_and_what_cannot_be_done_to_a_split(farm: Ops) -> None:
    node = Node(farm.master, "split-cancel")
    parent_id = planned(farm, node)
    child = next(p for p in parts(farm, parent_id) if p["step"] == "segment")
    refused = farm("jobs", "cancel", child["id"], expect=1)
    assert parent_id in refused.err
    assert parent_id in farm("jobs", "retry", child["id"], expect=1).err
    farm("jobs", "cancel", parent_id)
    run_parts_until(farm, node, parent_id, "canceled")  # the sweep: the plan had succeeded
    assert {p["state"] for p in parts(farm, parent_id) if p["step"] != "sweep"} <= {"canceled", "succeeded"}
    again = farm("jobs", "retry", parent_id, expect=1)
    assert "submit it again" in again.err
