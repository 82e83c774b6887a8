"""A split job's outputs are the unsplit job's, frame for frame: real FFmpeg through a real farm.

The same spec is run twice on the same source, once with ``"split": {"segment_s": 5}`` (at least
four segments over two agents, then the stitch) and once without, and every rung of the split
job is checked against the same rung of the unsplit one with ``tests/split_media.py``: frame
count and per-frame times, monotonic PTS and DTS, one constant frame step, a keyframe at every
seam of the plan, durations within one frame, audio within 50 ms of the video, SSIM ≥ 0.98,
and a well-formed HLS rendition adding up to the source. The plan itself is checked against the
source's packets, so a wrong cut is told apart from a wrong join.

Sources: (a) a keyframe every 2 s, (b) every 37 frames (no keyframe on a multiple of the
target), (c) B-frames, and open GOPs. Two run through the store (``store:///`` input and
outputs, the intermediates in the store), two on the shared media root.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import split_media
from tests.split_farm import SplitFarm, split_farm_on
from tests.webdav import WebDavStore

SEGMENT_S = 5
# rung name -> its settings: a 2-rung mp4 ladder and one HLS rendition. The first rung keeps the
# preset's own x264 speed, so its output has B-frames and the stitch joins reordered streams.
RUNGS: dict[str, dict[str, str]] = {
    "r360.mp4": {"preset": "h264-360p"},
    "r240.mp4": {"preset": "h264-360p", "size": "426x240", "encoder_preset": "ultrafast"},
    "hls/index.m3u8": {"preset": "h264-360p", "size": "320x180", "encoder_preset": "ultrafast"},
}
CASES = [("gop2s", "media"), ("gop37", "store"), ("bframes", "media"), ("open-gop", "store")]


@pytest.fixture
def split_farm(tmp_path: Path, webdav_store: WebDavStore) -> Iterator[SplitFarm]:
    with split_farm_on(tmp_path, webdav_store) as farm:
        yield farm


@dataclass(frozen=True)
class Place:
    """Where a case's source and outputs are: as the spec names them, and as files here."""

    farm: SplitFarm
    where: str  # "store" or "media"
    run: str

    def url(self, path: str) -> str:
        if self.where == "store":
            return f"store:///{self.run}/{path}"
        return f"file://{self.farm.media_root}/{self.run}/{path}"

    def file(self, path: str) -> Path:
        if self.where == "store":
            return self.farm.store.path(f"/{self.run}/{path}")
        return self.farm.media_root / self.run / path


def spec(place: Place, label: str) -> dict[str, Any]:
    return {"input": place.url("in/src.mp4"),
            "outputs": [{"url": place.url(f"{label}/{name}"), **settings}
                        for name, settings in RUNGS.items()]}


def rung_problems(place: Place, name: str, plan: dict[str, Any], source: split_media.Media) -> list[str]:
    """Every check of one rung, split against unsplit."""
    split_path, unsplit_path = place.file(f"split/{name}"), place.file(f"unsplit/{name}")
    split, unsplit = split_media.probe(split_path), split_media.probe(unsplit_path)
    problems = split_media.stream_problems(split, split_media.seams(plan))
    problems += [f"(unsplit) {p}" for p in split_media.stream_problems(unsplit, [])]
    problems += split_media.compare_problems(split, unsplit)
    problems += split_media.av_problems(split)
    if len(split.frames) != plan["frames"]:
        problems.append(f"{name}: {len(split.frames)} frames, the plan cut {plan['frames']}")
    problems += split_media.ssim_problems(split_path, unsplit_path, len(unsplit.frames))
    if name.endswith(".m3u8"):
        length = source.video.duration_s
        problems += split_media.hls_problems(split_path, length)
        problems += [f"(unsplit) {p}" for p in split_media.hls_problems(unsplit_path, length)]
    return [f"[{name}] {p}" for p in problems]


@pytest.mark.parametrize(("kind", "where"), CASES)
def test_a_split_encode_is_the_unsplit_encode(split_farm: SplitFarm, kind: str, where: str) -> None:
    place = Place(split_farm, where, f"case-{secrets.token_hex(3)}")
    split_media.make_source(place.file("in/src.mp4"), kind)
    unsplit_id = split_farm.submit(spec(place, "unsplit"))
    split_id = split_farm.submit({**spec(place, "split"), "split": {"segment_s": SEGMENT_S}})
    assert split_farm.job(split_id)["step"] == "split", split_farm.job(split_id)
    for job_id in (split_id, unsplit_id):
        done = split_farm.wait_state(job_id, timeout=400)
        assert done["state"] == "succeeded", done
    plan = split_farm.plan(split_id)
    print(f"plan: {plan}")  # shown with -s
    source = split_media.probe(place.file("in/src.mp4"))
    problems = split_media.plan_problems(plan, source, SEGMENT_S)
    for name in RUNGS:
        problems += rung_problems(place, name, plan, source)
    assert not problems, "\n".join(problems)
    assert split_farm.leftovers() == []
