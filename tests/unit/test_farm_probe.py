"""An output's record takes one ffprobe run, and says what the two separate runs said.

Real FFmpeg files: a video with audio, audio alone (no size), an HLS playlist, a file that
is not media (neither); ``record`` must give the duration and size that ``probe_duration_s``
and ``probe_video_size`` give, since those are what a result reported before.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ffrtmp.agent import delivery
from ffrtmp.agent.delivery import Output, record
from ffrtmp.agent.ffmpeg import probe_duration_s, probe_video_size


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   timeout=60)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1.2",
             "-f", "lavfi", "-i", "sine=duration=1.2", "-c:v", "libx264", "-preset", "ultrafast",
             "-c:a", "aac"]
    _ffmpeg(*video, str(d / "av.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=0.7", "-c:a", "aac", str(d / "audio.m4a"))
    _ffmpeg(*video, "-f", "hls", "-hls_time", "0.5", "-hls_playlist_type", "vod", str(d / "x.m3u8"))
    (d / "junk.mp4").write_bytes(b"not media at all\n" * 64)
    return {p.name: p for p in d.iterdir() if p.suffix in (".mp4", ".m4a", ".m3u8")}


@pytest.mark.parametrize("name", ["av.mp4", "audio.m4a", "x.m3u8", "junk.mp4"])
def test_one_probe_reports_what_two_did(outputs: dict[str, Path], name: str) -> None:
    path = outputs[name]
    got = record(Output(url=f"file://{path}", file=path, upload=None, hls=name.endswith(".m3u8")))
    assert (got["duration_s"], got["size"]) == (probe_duration_s(str(path)), probe_video_size(str(path)))
    if name in ("av.mp4", "x.m3u8"):
        assert got["size"] == "320x240" and got["duration_s"] == pytest.approx(1.2, abs=0.15)
    if name == "audio.m4a":
        assert got["size"] is None and got["duration_s"] == pytest.approx(0.7, abs=0.1)
    if name == "junk.mp4":
        assert got["size"] is None and got["duration_s"] is None


def test_a_record_runs_ffprobe_once(outputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[list[str]] = []
    real = subprocess.run

    def counting(argv: list[str], *args: object, **kwargs: object) -> object:
        runs.append(list(argv))
        return real(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(delivery.subprocess, "run", counting)
    path = outputs["av.mp4"]
    record(Output(url=f"file://{path}", file=path, upload=None, hls=False))
    assert [argv[0] for argv in runs] == ["ffprobe"]


def test_an_intermediate_is_not_probed(outputs: dict[str, Path]) -> None:
    path = outputs["av.mp4"]
    got = record(Output(url=f"file://{path}", file=path, upload=None, hls=False, probed=False))
    assert got["duration_s"] is None and got["size"] is None and got["bytes"] == path.stat().st_size
