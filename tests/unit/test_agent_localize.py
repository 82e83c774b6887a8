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
