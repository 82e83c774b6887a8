"""The spec as FFmpeg runs it on a node: remote media becomes files of the attempt's scratch dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.localize import localize
from ffrtmp.jobspec import FileSource, UrlSource, parse
from ffrtmp.layout import WorkDir

ROOTS = ["/srv/media"]
def test_a_staged_input_and_uploaded_outputs_are_files_in_the_scratch_dir() -> None:
    scratch = WorkDir(Path("/w")).job("j", 2)
    spec = parse({"input": "store:///in/a.mp4", "outputs": [
        {"url": "store:///out/x.mp4", "preset": "h264-480p"},
        {"url": "/srv/media/local.mp4", "preset": "copy"},
        {"url": "store:///out/hls/index.m3u8", "preset": "h264-480p"}]}, ROOTS)
    placed = localize(spec, scratch)
    assert placed.source == FileSource(url="store:///in/a.mp4", path="/w/j.2/inbox/a.mp4")
    assert [o.path for o in placed.outputs] == [
        "/w/j.2/outbox/0/x.mp4", "/srv/media/local.mp4", "/w/j.2/outbox/2/index.m3u8"]
    argv = build_argv(placed, progress_path="/s/progress.txt", stage="j.2")
    assert argv[argv.index("-i") + 1] == "/w/j.2/inbox/a.mp4"
    assert "/w/j.2/outbox/0/.x.mp4.j.2.part" in argv
    assert not any(a.startswith(("store:", "http")) for a in argv)  # FFmpeg sees no URL


def test_a_streamed_http_input_reaches_ffmpeg_with_its_reconnect_options() -> None:
    spec = parse({"input": "https://cdn.example.com/a.mp4", "input_fetch": "stream",
                  "outputs": [{"url": "/srv/media/o.mp4", "preset": "copy"}]}, ROOTS)
    placed = localize(spec, WorkDir(Path("/w")).job("j", 1))
    assert placed.source == UrlSource(url="https://cdn.example.com/a.mp4", scheme="https")
    argv = build_argv(placed, progress_path="/s/progress.txt")
    i = argv.index("-i")
    assert argv[i - 8:i + 2] == ["-reconnect", "1", "-reconnect_streamed", "1",
                                 "-reconnect_on_network_error", "1", "-reconnect_delay_max", "30",
                                 "-i", "https://cdn.example.com/a.mp4"]


def test_an_unplaced_spec_never_reaches_ffmpeg() -> None:
    """Without localizing, an uploaded output's path is relative: FFmpeg would write it
    wherever the agent happens to run, so the argv builder refuses it."""
    spec = parse({"input": "/srv/media/a.mp4",
                  "outputs": [{"url": "store:///out/x.mp4", "preset": "copy"}]}, ROOTS)
    with pytest.raises(ValueError, match="localize"):
        build_argv(spec, progress_path="/s/progress.txt")


# --- the parts of a split job ---

PARENT = "j-0123456789ab"
PLAN = {"segments": [{"start_s": "0.000000", "frames": 50, "duration_s": 2.0},
                     {"start_s": "2.000000", "frames": 25, "duration_s": 1.0}],
        "audio": True, "duration_s": 3.0, "frames": 75}


def split_children(output_dir: str) -> dict[str, dict]:
    """The plan, segment, audio, stitch and sweep specs of a two-rung split job."""
    from ffrtmp.jobspec.split import (
        Plan,
        part_children,
        plan_child,
        stitch_child,
        sweep_child,
        workspace,
        workspace_base,
    )

    parent = parse({"input": "store:///in/film.mp4", "split": {"segment_s": 2}, "outputs": [
        {"url": f"{output_dir}/a.mp4", "preset": "h264-480p"},
        {"url": f"{output_dir}/b.mp4", "preset": "h264-360p"}]}, ROOTS)
    doc, place = parent.to_dict(), workspace(workspace_base(parent), PARENT)
    plan = Plan.from_dict(PLAN)
    audio, segment, _ = part_children(doc, PARENT, place, plan)
    return {"plan": plan_child(doc, PARENT, place).spec, "segment": segment.spec,
            "audio": audio.spec, "stitch": stitch_child(doc, PARENT, place, plan).spec,
            "sweep": sweep_child(doc, PARENT, place).spec}


def test_a_stitch_reads_its_store_intermediates_from_the_inbox(tmp_path: Path) -> None:
    from ffrtmp.agent.split_argv import write_concat_lists

    scratch = WorkDir(Path("/w")).job("j-s", 1)
    spec = parse(split_children("store:///out")["stitch"], ROOTS)
    assert all(r.kind == "remote" for r in spec.reads())  # all staged first
    placed = localize(spec, scratch)
    assert [getattr(r, "path", None) for r in placed.reads()] == [
        f"/w/j-s.1/inbox/{name}" for name in
        ("seg-00000.r0.mp4", "seg-00000.r1.mp4", "seg-00001.r0.mp4", "seg-00001.r1.mp4",
         "audio.a0.mp4")]
    assert [o.path for o in placed.outputs] == ["/w/j-s.1/outbox/0/a.mp4", "/w/j-s.1/outbox/1/b.mp4"]
    lists = write_concat_lists(placed, tmp_path)
    assert "file '/w/j-s.1/inbox/seg-00001.r1.mp4'" in lists[1].read_text()
    argv = build_argv(placed, progress_path="/s/progress.txt", stage="j-s.1", work=tmp_path)
    assert not any(a.startswith(("store:", "http")) for a in argv)  # FFmpeg sees no URL
    assert spec.step is not None and spec.step.workspace == f"store:///out/.ffrtmp-split-{PARENT}"


def test_a_stitch_on_a_media_root_reads_the_workspace_in_place() -> None:
    spec = parse(split_children("/srv/media/out")["stitch"], ROOTS)
    placed = localize(spec, WorkDir(Path("/w")).job("j-s", 1))
    assert placed.step == spec.step
    assert [getattr(r, "path", None) for r in placed.reads()][:1] == [
        f"/srv/media/out/.ffrtmp-split-{PARENT}/seg-00000.r0.mp4"]


@pytest.mark.parametrize("kind", ["plan", "segment", "audio"])
def test_the_parts_that_read_the_source_read_its_staged_copy(kind: str) -> None:
    spec = parse(split_children("store:///out")[kind], ROOTS)
    placed = localize(spec, WorkDir(Path("/w")).job("j-p", 1))
    assert placed.source == FileSource(url="store:///in/film.mp4", path="/w/j-p.1/inbox/film.mp4")
    assert placed.reads() == (placed.source,)
    assert placed.step == spec.step  # the workspace stays where the outputs go


def test_a_sweep_reads_nothing_and_keeps_its_workspace() -> None:
    spec = parse(split_children("store:///out")["sweep"], ROOTS)
    placed = localize(spec, WorkDir(Path("/w")).job("j-w", 1))
    assert placed.reads() == () and placed.step == spec.step


@pytest.mark.parametrize(("kind", "probed"), [("segment", False), ("audio", False),
                                               ("stitch", True)])
def test_only_the_final_outputs_are_probed_for_their_records(kind: str, probed: bool) -> None:
    """Intermediates are recorded by size and checksum only: ffprobe is for what users get."""
    from ffrtmp.agent.delivery import plan

    scratch = WorkDir(Path("/w")).job("j-1", 1)
    placed = localize(parse(split_children("store:///out")[kind], ROOTS), scratch)
    assert {output.probed for output in plan(placed, lambda url: url)} == {probed}
