"""How the CLI shows a split job: the parent's derived progress, its parts, and no credential.

The job dicts are hand-made in the shape the master's API sends (``step``, ``parent_id`` and the
derived ``progress``), so these run without a master; ``tests/integration/test_cli_split.py``
shows the same views against a real one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ffrtmp.cli import main as cli
from ffrtmp.cli import render
from ffrtmp.cli.context import Env
from ffrtmp.cli.jobs import _list_params
from ffrtmp.cli.main import build_parser
from ffrtmp.cli.submit import specs_from_args

SECRET = "s3cr3t-signature"
PRESIGNED = f"https://bucket.example/in/film.mp4?X-Amz-Signature={SECRET}"


def parent(**changes: Any) -> dict[str, Any]:
    job = {"id": "j-parent", "state": "running", "cancel_requested": False, "step": "split",
           "parent_id": None, "attempt": 0, "node_id": None, "queue": "batch", "priority": "medium",
           "intent": "film", "created_at": "2026-01-01T00:00:00.000Z",
           "spec": {"input": "store:///in/film.mp4", "split": {"segment_s": 60.0},
                    "outputs": [{"url": "store:///out/film-720p.mp4", "preset": "h264-720p"}]},
           "progress": {"percent": 41.6, "stage": "encode", "segments": 10, "segments_done": 3},
           "attempts": [], "history": []}
    return {**job, **changes}


def part(job_id: str, step: str, state: str = "queued", index: int | None = None,
         **changes: Any) -> dict[str, Any]:
    spec_step = {"kind": step, "parent": "j-parent", "workspace": "store:///out/.ffrtmp-split-j-parent",
                 **({} if index is None else {"index": index})}
    job = {**parent(), "id": job_id, "state": state, "step": step, "parent_id": "j-parent",
           "attempt": 1, "node_id": "n-1", "progress": None,
           "spec": {"input": "store:///in/film.mp4", "outputs": [], "step": spec_step}}
    return {**job, **changes}


def failed_segment(reason: str) -> dict[str, Any]:
    history = [{"at": "2026-01-01T00:01:00.000Z", "from": "running", "to": "failed", "attempt": 1,
                "node_id": "n-2", "reason": reason}]
    return part("j-seg-2", "segment", "failed", 2, node_id="n-2", history=history)


def test_a_parents_progress_names_its_stage_and_the_segments_done() -> None:
    assert render.progress_text(parent()) == "42% encode 3/10"
    planning = parent(progress={"percent": 1.0, "stage": "plan", "segments": 0, "segments_done": 0})
    assert render.progress_text(planning) == "1% plan"
    assert render.progress_text(part("j-seg-0", "segment", progress={"percent": 12.5})) == "12%"


def test_the_list_of_top_level_jobs_keeps_its_columns_and_parts_add_parent_and_step() -> None:
    top = render.job_rows([parent()]).splitlines()
    assert top[0].split() == ["ID", "STATE", "QUEUE", "PRIORITY", "NODE", "PROGRESS", "INTENT", "CREATED"]
    assert "42% encode 3/10" in top[1]
    rows = render.job_rows([parent(), part("j-plan", "plan", "succeeded")], parts=True).splitlines()
    assert rows[0].split()[:4] == ["ID", "PARENT", "STEP", "STATE"]
    assert rows[1].split()[:4] == ["j-parent", "-", "split", "running"]
    assert rows[2].split()[:4] == ["j-plan", "j-parent", "plan", "succeeded"]


def test_show_of_a_parent_prints_the_split_and_a_table_of_its_parts() -> None:
    parts = [part("j-plan", "plan", "succeeded"), part("j-seg-0", "segment", "succeeded", 0),
             part("j-seg-1", "segment", "running", 1, progress={"percent": 50.0}),
             failed_segment("exited_nonzero: ffmpeg exited 1"),
             part("j-audio", "audio", "queued", node_id=None)]
    lines = render.split_detail(parent(state="failed"), parts).splitlines()
    assert lines[0] == "job j-parent: failed"
    assert "  split     segments of 60 s, stage encode, 3/10 segments done" in lines
    assert "  progress  42% encode 3/10" in lines
    table = lines[lines.index("  parts:") + 1:]
    assert table[0].split() == ["ID", "STEP", "INDEX", "STATE", "NODE", "ATTEMPT", "PROGRESS", "REASON"]
    assert [row.split()[:4] for row in table[1:]] == [
        ["j-plan", "plan", "-", "succeeded"], ["j-seg-0", "segment", "0", "succeeded"],
        ["j-seg-1", "segment", "1", "running"], ["j-seg-2", "segment", "2", "failed"],
        ["j-audio", "audio", "-", "queued"]]
    assert table[3].split()[4:7] == ["n-1", "1", "50%"]
    assert table[4].endswith("exited_nonzero: ffmpeg exited 1")
    assert all(line.startswith("    ") for line in table)


def test_show_of_a_part_names_its_parent_and_index() -> None:
    lines = render.job_detail(failed_segment("lost")).splitlines()
    assert "  part of   j-parent (segment 2)" in lines
    assert "  part of   j-parent (audio)" in render.job_detail(part("j-a", "audio")).splitlines()
    assert not any(line.startswith("  split") or line.startswith("  part of")
                   for line in render.job_detail({**parent(), "step": None}).splitlines())


def test_the_watch_line_of_a_parent_shows_the_segments_done_and_the_percent() -> None:
    line = render.bar(parent())
    assert line.startswith("j-parent running   [############..................]  41.6% ")
    assert line.endswith("segments 3/10 encode")
    assert render.bar(parent(progress={"percent": 0.0, "stage": "plan", "segments": 0})).endswith("plan")


def test_no_view_of_a_split_shows_a_credential() -> None:
    leaking = failed_segment(f"input_refused: GET {PRESIGNED} -> 403 Forbidden")
    leaking["spec"]["input"] = PRESIGNED
    shown = render.split_detail(parent(spec={**parent()["spec"], "input": PRESIGNED}), [leaking])
    assert SECRET not in shown
    assert "https://bucket.example/in/film.mp4?REDACTED" in shown
    assert SECRET not in render.part_rows([leaking]) + render.job_detail(leaking)


def test_submit_split_s_adds_the_split_to_flags_and_to_a_spec_file(tmp_path: Path) -> None:
    argv = ["jobs", "submit", "--input", "/in/film.mp4", "--output", "store:///out/f.mp4", "--split-s", "60"]
    spec = specs_from_args(build_parser().parse_args(argv), Env())
    assert spec["split"] == {"segment_s": 60.0}
    assert "split" not in specs_from_args(build_parser().parse_args(argv[:-2]), Env())
    path = tmp_path / "job.json"
    outputs = [{"url": "store:///out/f.mp4", "preset": "h264-480p"}]
    path.write_text(json.dumps({"input": "/in/film.mp4", "outputs": outputs}))
    from_file = specs_from_args(build_parser().parse_args(
        ["jobs", "submit", "--spec", str(path), "--split-s", "30"]), Env())
    assert from_file == {"input": "/in/film.mp4", "outputs": outputs, "split": {"segment_s": 30.0}}


def test_split_s_given_twice_is_a_usage_error_before_any_request(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"input": "in/film.mp4", "outputs": [], "split": {"segment_s": 60}}))
    err = io.StringIO()
    status = cli.main(["jobs", "submit", "--spec", str(path), "--split-s", "30"],
                      env=Env(stdout=io.StringIO(), stderr=err, environ={}))
    assert status == 2
    assert err.getvalue() == f"ffrtmp: --spec {path} already has split; give it there or with --split-s\n"


def test_list_asks_for_children_or_one_parent_and_not_both() -> None:
    def params(*flags: str) -> dict[str, Any]:
        return _list_params(build_parser().parse_args(["jobs", "list", *flags]))

    assert params() == {"limit": 100}
    assert params("--children") == {"limit": 100, "children": 1}
    assert params("--parent", "j-parent", "--state", "failed") == {
        "limit": 100, "parent": "j-parent", "state": "failed"}
    err = io.StringIO()
    status = cli.main(["jobs", "list", "--children", "--parent", "j-parent"],
                      env=Env(stdout=io.StringIO(), stderr=err, environ={}))
    assert status == 2


class PagedApi:
    """The master's list of parts, two to a page, and each part's detail with its history."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = {j["id"]: j for j in jobs}
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    def call(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((path, params))
        if path != "/api/v1/jobs":
            return {"job": self.jobs[path.rsplit("/", 1)[1]]}
        order = list(self.jobs.values())
        start = int((params or {}).get("cursor", 0))
        page = [{k: v for k, v in j.items() if k != "history"} for j in order[start:start + 2]]
        return {"jobs": page, "next_cursor": start + 2 if start + 2 < len(order) else None}


def test_show_reads_every_page_of_parts_and_the_reasons_of_the_first_failed_ones() -> None:
    from ffrtmp.cli import jobs as commands

    failed = [{**failed_segment(f"broken {i}"), "id": f"j-seg-{i}"} for i in range(commands.REASONS_READ + 3)]
    api = PagedApi([part("j-plan", "plan", "succeeded"), *failed])
    parts = commands._parts(api, "j-parent")  # type: ignore[arg-type]
    assert [p["id"] for p in parts] == ["j-plan", *(f["id"] for f in failed)]
    lists = [params for path, params in api.calls if path == "/api/v1/jobs"]
    assert len(lists) == (len(failed) + 1 + 1) // 2 and all(p and p["parent"] == "j-parent" for p in lists)
    reasons = [render.part_reason(p) for p in parts[1:]]
    assert reasons == [f"broken {i}" for i in range(commands.REASONS_READ)] + [None] * 3
