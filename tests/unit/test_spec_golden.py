"""Golden table: the argv, staging and canonical JSON of varied specs, recorded from the code
before the typed job spec landed, so the refactor is checked to change none of them.

Entries 11 and 12 (streamed http inputs) were re-recorded once by the media plane, which added
``input_fetch`` to their canonical form and FFmpeg's reconnect options to their argv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.outputs import output_dirs, staged_outputs
from ffrtmp.jobspec import parse

ROOTS = ["/srv/media", "/data/in"]
PROGRESS = "/var/lib/ffrtmp/worker/jobs/j.1/progress.txt"
GOLDEN = Path(__file__).parent / "data" / "spec_golden.json"


def out(url: str, preset: str = "h264-720p", **overrides: Any) -> dict[str, Any]:
    return {"url": url, "preset": preset, **overrides}


SPECS: list[dict[str, Any]] = [
    {"input": "file:///srv/media/in/a.mov", "outputs": [out("file:///srv/media/out/a.mp4")]},
    {"input": "/srv/media//in/./b.mov", "outputs": [out("//srv/media/out//b.mkv", "h264-1080p")]},
    {"input": "/data/in/c.mp4", "outputs": [out("/srv/media/o/c.m3u8", "h264-480p", fps="29.97")],
     "duration_s": 12.5},
    {"input": "testsrc://", "outputs": [out("/srv/media/t.mp4")]},
    {"input": "testsrc://?duration=2.5&size=0640x0360&rate=25.0",
     "outputs": [out("/srv/media/t1.mp4", "h264-360p"), out("/srv/media/t2.mkv", "h265-1080p")]},
    {"input": "testsrc://?duration=3&realtime=1",
     "outputs": [out("/srv/media/rt/index.m3u8", "h264-480p")]},
    {"input": "testsrc://?rate=29.97", "outputs": [out("rtmp://live.example.com/app/s")]},
    {"input": "testsrc://?duration=4", "outputs": [
        out("rtmp://live.example.com/app/k", "h264-480p"), out("/srv/media/live/k.m3u8", "copy"),
        out("/srv/media/live/k.mkv", "copy", video_codec="libx264", size="640x360")]},
    {"input": "rtmp://in.example.com/live/cam", "outputs": [out("rtmp://out.example.com/a/b", "copy")]},
    {"input": "rtmps://in.example.com:443/live/cam",
     "outputs": [out("/srv/media/cam/index.m3u8", "h264-720p", encoder_preset="fast")]},
    {"input": "srt://10.0.0.5:9000?mode=caller", "outputs": [out("/srv/media/srt.mp4", "h265-1080p")]},
    # streamed http inputs: the media plane added input_fetch (staging is the default) and
    # FFmpeg's reconnect options; everything else about these two is as recorded
    {"input": "https://cdn.example.com/a.mp4", "input_fetch": "stream",
     "outputs": [out("rtmp://live.example.com/app/a", "copy")]},
    {"input": "http://cdn.example.com/b.mp4", "input_fetch": "stream", "outputs": [
        out("/srv/media/b.mp4", "h264-720p", video_bitrate=4_000_000, audio_bitrate="64k"),
        out("/srv/media/b-lo.mp4", "h264-360p", video_bitrate="1.5M", fps=24)]},
    {"input": "/srv/media/in/x.mp4", "outputs": [
        out("/srv/media/x.mp4", "copy", video_codec="h264_nvenc", video_bitrate="2M", fps=30),
        out("/srv/media/x.mkv", "h264-720p", video_codec="copy", audio_codec="libopus")],
     "requires": ["cuda", "h264_nvenc"], "queue": "batch", "priority": "low"},
    {"input": "/srv/media/in/y.mp4", "outputs": [
        out("/srv/media/y.mp4", "h265-1080p", size="1280x720", video_bitrate=900000)],
     "limits": {"cpu_max": "50000", "memory_max": "1G"}, "duration_s": 60, "intent": "demo"},
    {"input": "/srv/media/in/z.mp4", "outputs": [
        out("/srv/media/z.MP4", "h265-1080p"), out("/srv/media/z.MKV", "h265-1080p", fps=50)]},
    {"input": "/srv/media/in/100%/p.mp4", "outputs": [out("/srv/media/100%/p%d/index.m3u8", "h264-480p")]},
    {"input": "/srv/media/in/q.mp4", "outputs": [
        out("/srv/media/q.mp4", "h264-720p", video_codec="libx265", encoder_preset="slow"),
        out("/srv/media/q2.mp4", "h264-720p", video_codec="h264_vaapi", encoder_preset="slow")]},
    {"input": "rtmp://in.example.com/live/k2", "outputs": [
        out("rtmps://out.example.com:443/app/s?key=1", "h264-720p", video_codec="h264_nvenc"),
        out("/srv/media/live/s.m3u8", "copy")], "queue": "live", "priority": "high",
     "duration_s": 3600},
    {"input": "testsrc://?size=320x240&rate=30&duration=2",
     "outputs": [out("/srv/media/a-720p.mp4"), out("/srv/media/a-480p.mkv", "h264-480p",
                                                    video_bitrate="900k", encoder_preset="ultrafast",
                                                    fps=25)]},
    {"input": "/srv/media/in/audio.mp4", "outputs": [out("/srv/media/a.mkv", "copy", audio_codec="aac",
                                                         audio_bitrate="96k")]},
    {"input": "/srv/media/in/v.mp4", "outputs": [out("/srv/media/v.mp4", "copy", video_codec="libx264",
                                                     fps="23.976", video_bitrate="2500k")]},
]


def record(doc: dict[str, Any]) -> dict[str, Any]:
    spec = parse(doc, ROOTS, check_filesystem=False)
    return {"argv": build_argv(spec, progress_path=PROGRESS, ffmpeg="/usr/bin/ffmpeg"),
            "staged_argv": build_argv(spec, progress_path=PROGRESS, stage="j.1"),
            "staged": staged_outputs(spec), "dirs": output_dirs(spec),
            "canonical": spec.to_dict(), "live": spec.is_live,
            "capabilities": list(spec.capabilities()),
            "expected_duration_s": spec.expected_duration_s()}


@pytest.mark.parametrize("index", range(len(SPECS)))
def test_spec_matches_the_golden_table(index: int) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert len(golden) == len(SPECS)
    assert record(SPECS[index]) == golden[index]


if __name__ == "__main__":  # re-record (only ever from code known to be right)
    GOLDEN.write_text(json.dumps([record(doc) for doc in SPECS], indent=1) + "\n")
