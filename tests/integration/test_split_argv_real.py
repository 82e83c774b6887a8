"""The split workloads' argv, run by real FFmpeg without a farm: segments, audio and stitch of
a real file give the unsplit encode frame for frame.

This pins the FFmpeg side of split and stitch (seeking, frame counts, the concat list's exact
durations, audio once) apart from dispatch; the farm tests run the same argv through agents.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ffrtmp import jobspec
from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.split_argv import write_concat_lists
from ffrtmp.agent.split_plan import PACKETS_ARGS, STREAMS_ARGS, parse_packets, parse_streams, plan
from ffrtmp.jobspec.split import (
    Plan,
    part_children,
    stitch_child,
    workspace,
    workspace_base,
)
from ffrtmp.jobspec.steps import MAX_SEGMENTS
from tests.split_media import (
    av_problems,
    compare_problems,
    hls_problems,
    make_source,
    probe,
    seams,
    ssim_problems,
    stream_problems,
)

PARENT = "j-0123456789ab"
SEGMENT_S = 5


def _spec(root: Path, doc: dict[str, object]) -> jobspec.JobSpec:
    return jobspec.parse(doc, [str(root)], check_filesystem=False)


def _run(spec: jobspec.JobSpec, work: Path) -> None:
    argv = build_argv(spec, progress_path=str(work / "progress.txt"), work=work)
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _probe_plan(source: Path) -> dict[str, object]:
    def ffprobe(args: tuple[str, ...]) -> str:
        return subprocess.run(["ffprobe", *args, str(source)], capture_output=True, text=True,
                              check=True).stdout
    return plan(parse_packets(ffprobe(PACKETS_ARGS)), parse_streams(ffprobe(STREAMS_ARGS)),
                SEGMENT_S, MAX_SEGMENTS)


def _parent(root: Path, source: Path, name: str) -> dict[str, object]:
    return {"input": str(source), "split": {"segment_s": SEGMENT_S}, "outputs": [
        {"url": str(root / "out" / name / "r360.mp4"), "preset": "h264-360p"},
        {"url": str(root / "out" / name / "r240.mp4"), "preset": "h264-360p", "size": "426x240",
         "video_bitrate": "300k", "audio_bitrate": "64k"},
        {"url": str(root / "out" / name / "hls" / "r360.m3u8"), "preset": "h264-360p"}]}


def _split(root: Path, doc: dict[str, object], work: Path) -> dict[str, object]:
    parent = _spec(root, doc)
    place = workspace(workspace_base(parent), PARENT)
    Path(place).mkdir(parents=True)
    assert parent.source.local_path is not None
    found = _probe_plan(Path(parent.source.local_path))
    planned = Plan.from_dict(found)
    canonical = parent.to_dict()
    for child in part_children(canonical, PARENT, place, planned):
        _run(_spec(root, child.spec), work)
    stitch = _spec(root, stitch_child(canonical, PARENT, place, planned).spec)
    for output in stitch.outputs:
        assert output.path is not None
        Path(output.path).parent.mkdir(parents=True, exist_ok=True)
    write_concat_lists(stitch, work)
    _run(stitch, work)
    return found


def _unsplit(root: Path, doc: dict[str, object], work: Path) -> None:
    whole = {**json.loads(json.dumps(doc)), "split": {"segment_s": 0}}
    for output in whole["outputs"]:  # type: ignore[attr-defined]
        output["url"] = output["url"].replace("/out/split/", "/out/whole/")
        Path(output["url"]).parent.mkdir(parents=True, exist_ok=True)
    _run(_spec(root, whole), work)


# One source here: the farm tests (test_split_correctness) run every kind through agents; this
# one, open GOPs (leading B-frames refer to the GOP before the cut), pins the argv alone.
@pytest.mark.parametrize("kind", ["open-gop"])
def test_split_encode_equals_the_unsplit_one(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "media"
    source = make_source(root / "in" / f"{kind}.mp4", kind)
    doc = _parent(root, source, "split")
    found = _split(root, doc, tmp_path)
    _unsplit(root, doc, tmp_path)
    assert len(found["segments"]) >= 4  # type: ignore[arg-type]

    problems: list[str] = []
    for rung in ("r360.mp4", "r240.mp4", "hls/r360.m3u8"):
        split, whole = root / "out" / "split" / rung, root / "out" / "whole" / rung
        ours, theirs = probe(split), probe(whole)
        problems += compare_problems(ours, theirs) + av_problems(ours)
        problems += stream_problems(ours, seams(found)) if rung.endswith(".mp4") else []
        problems += ssim_problems(split, whole, len(theirs.frames))
    problems += hls_problems(root / "out" / "split" / "hls" / "r360.m3u8",
                             float(found["duration_s"]))  # type: ignore[arg-type]
    assert problems == []
