"""FFmpeg argv tables, -progress parsing, and capability discovery against a fake ffmpeg."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.agent import ffmpeg, outputs
from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.ffmpeg import Capabilities, discover_capabilities
from ffrtmp.agent.outputs import output_dirs
from ffrtmp.jobspec import parse
from ffrtmp.progress import PROGRESS_TAIL_BYTES, Progress, read_progress

ROOTS = ["/srv/media"]
PROGRESS = "/var/lib/ffrtmp/worker/jobs/j1/progress"
HEAD = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
        "-progress", PROGRESS, "-stats_period", "1"]
TESTSRC_2S = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
              "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=2"]
X264_720P = ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "2800k", "-maxrate", "2800000",
             "-bufsize", "5600000", "-pix_fmt", "yuv420p"]


def argv_for(doc: dict[str, Any]) -> list[str]:
    return build_argv(parse(doc, ROOTS), progress_path=PROGRESS)


def test_file_to_mp4() -> None:
    assert argv_for({
        "input": "file:///srv/media/in/movie.mov",
        "outputs": [{"url": "file:///srv/media/out/movie-720p.mp4", "preset": "h264-720p"}],
    }) == [*HEAD, "-i", "/srv/media/in/movie.mov",
           "-map", "0:v:0?", "-map", "0:a:0?",
           *X264_720P, "-force_key_frames", "expr:gte(t,n_forced*2)", "-s", "1280x720",
           "-c:a", "aac", "-b:a", "128k",
           "-f", "mp4", "-movflags", "+faststart", "/srv/media/out/movie-720p.mp4"]


def test_testsrc_ladder_is_one_invocation() -> None:
    assert argv_for({
        "input": "testsrc://?duration=2&size=320x240&rate=30",
        "outputs": [
            {"url": "/srv/media/out/a-720p.mp4", "preset": "h264-720p"},
            {"url": "/srv/media/out/a-480p.mkv", "preset": "h264-480p", "video_bitrate": "900k",
             "encoder_preset": "ultrafast", "fps": 25},
        ],
    }) == [*HEAD, *TESTSRC_2S,
           "-map", "0:v", "-map", "1:a", *X264_720P, "-g", "60", "-s", "1280x720",
           "-c:a", "aac", "-b:a", "128k",
           "-f", "mp4", "-movflags", "+faststart", "/srv/media/out/a-720p.mp4",
           "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "900k", "-maxrate", "900000",
           "-bufsize", "1800000", "-pix_fmt", "yuv420p", "-g", "50", "-s", "854x480",
           "-r", "25", "-c:a", "aac", "-b:a", "96k",
           "-f", "matroska", "/srv/media/out/a-480p.mkv"]


def test_hls_vod() -> None:
    assert argv_for({
        "input": "/srv/media/in/movie.mov",
        "outputs": [{"url": "/srv/media/hls/movie/index.m3u8", "preset": "h264-480p",
                     "fps": "30"}],
        "duration_s": 60,
    }) == [*HEAD, "-i", "/srv/media/in/movie.mov",
           "-map", "0:v:0?", "-map", "0:a:0?",
           "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1200k", "-maxrate", "1200000",
           "-bufsize", "2400000", "-pix_fmt", "yuv420p", "-g", "60", "-s", "854x480",
           "-r", "30", "-c:a", "aac", "-b:a", "96k", "-t", "60",
           "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod",
           "-hls_segment_filename", "/srv/media/hls/movie/index_%05d.ts",
           "/srv/media/hls/movie/index.m3u8"]


def test_rtmp_push_from_testsrc_is_paced_and_live() -> None:
    spec = parse({
        "input": "testsrc://?duration=2&size=320x240",
        "outputs": [{"url": "rtmp://live.example.com/app/key", "preset": "h264-720p"},
                    {"url": "/srv/media/live/key.m3u8", "preset": "copy"}],
    }, ROOTS)
    assert spec.is_live
    assert build_argv(spec, progress_path=PROGRESS) == [
        *HEAD,
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
        "-re", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=2",
        "-map", "0:v", "-map", "1:a", *X264_720P, "-g", "60", "-s", "1280x720",
        "-c:a", "aac", "-b:a", "128k",
        "-f", "flv", "-flvflags", "no_duration_filesize", "rtmp://live.example.com/app/key",
        "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "copy",
        "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "event",
        "-hls_segment_filename", "/srv/media/live/key_%05d.ts", "/srv/media/live/key.m3u8"]


def test_rtmp_input_has_a_read_timeout_and_no_pacing() -> None:
    assert argv_for({
        "input": "rtmp://ingest.example.com/live/cam1",
        "outputs": [{"url": "rtmp://live.example.com/app/cam1", "preset": "copy"}],
    }) == [*HEAD, "-rw_timeout", "10000000", "-i", "rtmp://ingest.example.com/live/cam1",
           "-map", "0:v:0?", "-map", "0:a:0?", "-c:v", "copy", "-c:a", "copy",
           "-f", "flv", "-flvflags", "no_duration_filesize", "rtmp://live.example.com/app/cam1"]


def test_http_input_pushed_live_is_paced() -> None:
    argv = argv_for({"input": "https://cdn.example.com/a.mp4", "input_fetch": "stream",
                     "outputs": [{"url": "rtmp://live.example.com/app/a", "preset": "copy"}]})
    assert argv[len(HEAD):len(HEAD) + 13] == [
        "-re", "-rw_timeout", "10000000", "-reconnect", "1", "-reconnect_streamed", "1",
        "-reconnect_on_network_error", "1", "-reconnect_delay_max", "30", "-i",
        "https://cdn.example.com/a.mp4"]


def test_copy_to_mkv_with_duration_cap() -> None:
    assert argv_for({
        "input": "/srv/media/in/movie.mp4",
        "outputs": [{"url": "/srv/media/out/clip.mkv", "preset": "copy"}],
        "duration_s": 12.5,
    }) == [*HEAD, "-i", "/srv/media/in/movie.mp4",
           "-map", "0:v:0?", "-map", "0:a:0?", "-c:v", "copy", "-c:a", "copy",
           "-t", "12.5", "-f", "matroska", "/srv/media/out/clip.mkv"]


def test_h265_mp4_gets_the_hvc1_tag_and_quiet_x265() -> None:
    assert argv_for({
        "input": "/srv/media/in/movie.mov",
        "outputs": [{"url": "/srv/media/out/movie-hevc.mp4", "preset": "h265-1080p",
                     "fps": 24}],
    }) == [*HEAD, "-i", "/srv/media/in/movie.mov",
           "-map", "0:v:0?", "-map", "0:a:0?",
           "-c:v", "libx265", "-preset", "fast", "-b:v", "3000k", "-maxrate", "3000000",
           "-bufsize", "6000000", "-pix_fmt", "yuv420p", "-g", "48",
           "-x265-params", "log-level=error", "-tag:v", "hvc1", "-s", "1920x1080", "-r", "24",
           "-c:a", "aac", "-b:a", "128k",
           "-f", "mp4", "-movflags", "+faststart", "/srv/media/out/movie-hevc.mp4"]


def test_other_encoders_get_no_x264_options() -> None:
    argv = argv_for({
        "input": "/srv/media/in/movie.mov",
        "outputs": [{"url": "/srv/media/out/a.mkv", "preset": "h264-720p",
                     "video_codec": "h264_nvenc", "audio_codec": "libopus",
                     "audio_bitrate": "64k"}],
    })
    assert argv[len(HEAD) + 6:] == [
        "-c:v", "h264_nvenc", "-b:v", "2800k", "-maxrate", "2800000", "-bufsize", "5600000",
        "-force_key_frames", "expr:gte(t,n_forced*2)", "-s", "1280x720",
        "-c:a", "libopus", "-b:a", "64k", "-f", "matroska", "/srv/media/out/a.mkv"]


def test_percent_in_an_hls_path_is_escaped_for_the_segment_pattern() -> None:
    argv = argv_for({"input": "/srv/media/in.mov",
                     "outputs": [{"url": "/srv/media/100%/a%d.m3u8", "preset": "copy"}]})
    index = argv.index("-hls_segment_filename")
    assert argv[index + 1:] == ["/srv/media/100%%/a%%d_%05d.ts", "/srv/media/100%/a%d.m3u8"]


def test_custom_ffmpeg_binary_and_progress_must_be_a_file() -> None:
    spec = parse({"input": "testsrc://", "outputs": [{"url": "/srv/media/a.mp4",
                                                      "preset": "copy"}]}, ROOTS)
    assert build_argv(spec, progress_path=PROGRESS, ffmpeg="/opt/ffmpeg/bin/ffmpeg")[0] == \
        "/opt/ffmpeg/bin/ffmpeg"
    for bad in ("pipe:1", "-", "progress.txt"):
        with pytest.raises(ValueError, match="absolute file path"):
            build_argv(spec, progress_path=bad)


def test_output_dirs() -> None:
    spec = parse({"input": "/srv/media/in.mov", "outputs": [
        {"url": "file:///srv/media/out/a.mp4", "preset": "copy"},
        {"url": "/srv/media/out/b.mkv", "preset": "copy"},
        {"url": "/srv/media/hls/c/index.m3u8", "preset": "copy"},
        {"url": "rtmp://live.example.com/app/s", "preset": "copy"}]}, ROOTS)
    assert output_dirs(spec) == ["/srv/media/out", "/srv/media/hls/c"]


# --- read_progress ----------------------------------------------------------------------------


def block(out_time_us: str = "1000000", progress: str = "continue", **extra: str) -> str:
    fields = {"frame": "30", "fps": "29.97", "stream_0_0_q": "28.0", "bitrate": "800kbits/s",
              "total_size": "100000", "out_time_us": out_time_us, "out_time_ms": out_time_us,
              "out_time": "00:00:01.000000", "dup_frames": "0", "drop_frames": "0",
              "speed": "1.02x", **extra, "progress": progress}
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "progress"
    path.write_text(text)
    return str(path)


def test_progress_missing_empty_or_incomplete(tmp_path: Path) -> None:
    assert read_progress(str(tmp_path / "absent"), 10) is None
    assert read_progress(write(tmp_path, ""), 10) is None
    assert read_progress(write(tmp_path, block()[:-20]), 10) is None


def test_progress_uses_the_last_complete_block(tmp_path: Path) -> None:
    text = block("1000000") + block("2500000", frame="75", speed=" 2.5x") + block("9")[:40]
    assert read_progress(write(tmp_path, text), 10) == Progress(
        out_time_s=2.5, fps=29.97, speed=2.5, frame=75, percent=25.0, ended=False,
        eta_s=3.0)  # 7.5 s of content left at 2.5x


def test_progress_end_and_percent_cap(tmp_path: Path) -> None:
    path = write(tmp_path, block("2005333", progress="end"))
    assert read_progress(path, 2.0) == Progress(
        out_time_s=2.005333, fps=29.97, speed=1.02, frame=30, percent=100.0, ended=True, eta_s=0.0)
    assert read_progress(path, None).percent is None  # type: ignore[union-attr]
    assert read_progress(path, 0).percent is None  # type: ignore[union-attr]


def test_progress_values_not_yet_known(tmp_path: Path) -> None:
    text = block("N/A", fps="N/A", speed="N/A", frame="N/A", out_time="N/A")
    assert read_progress(write(tmp_path, text), 10) == Progress(
        out_time_s=None, fps=None, speed=None, frame=None, percent=None, ended=False)
    negative = block("-9223372036854775807")
    assert read_progress(write(tmp_path, negative), 10).out_time_s is None  # type: ignore[union-attr]


def test_progress_falls_back_to_out_time(tmp_path: Path) -> None:
    text = "frame=1\nout_time=01:02:03.500000\nprogress=continue\n"
    progress = read_progress(write(tmp_path, text), 7200)
    assert progress is not None
    assert progress.out_time_s == pytest.approx(3723.5)
    assert progress.percent == pytest.approx(51.7)


def test_progress_reads_only_the_tail_of_a_long_file(tmp_path: Path) -> None:
    blocks = [block(str(second * 1_000_000)) for second in range(1, 2000)]
    text = "".join(blocks) + block("2000000000", progress="end")
    assert len(text) > 4 * PROGRESS_TAIL_BYTES
    progress = read_progress(write(tmp_path, text), 4000)
    assert progress is not None
    assert (progress.out_time_s, progress.percent, progress.ended) == (2000.0, 50.0, True)


# --- discover_capabilities against a fake ffmpeg ----------------------------------------------


FAKE_FFMPEG = '''
import sys, threading
args = sys.argv[1:]
if "-version" in args:
    print("ffmpeg version 9.9-fake Copyright (c) the FFmpeg developers")
elif "-encoders" in args:
    print("Encoders:\\n V..... = Video\\n A..... = Audio\\n S..... = Subtitle\\n ------")
    for line in ("V....D libx264              libx264 H.264",
                 "V....D h264_nvenc           NVIDIA NVENC H.264 encoder",
                 "V....D hevc_vaapi           H.265/HEVC (VAAPI)",
                 "V..... h264_qsv             H.264 (Intel Quick Sync Video acceleration)",
                 "A..... aac                  AAC (Advanced Audio Coding)",
                 "S..... mov_text             3GPP Timed Text subtitle"):
        print(" " + line)
elif "-hwaccels" in args:
    print("Hardware acceleration methods:\\ncuda\\nvaapi\\n")
elif "h264_qsv" in args:
    threading.Event().wait()  # a wedged driver: the probe must time out
else:
    works = {"h264_nvenc", "cuda"}
    sys.exit(0 if works & set(args) else 1)
'''


def _fake_ffmpeg(tmp_path: Path, prelude: str = "") -> Path:
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!{sys.executable}\n{prelude}{FAKE_FFMPEG}")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def test_discovery_keeps_only_working_hardware(tmp_path: Path) -> None:
    fake = _fake_ffmpeg(tmp_path)
    assert discover_capabilities(str(fake), timeout_s=2) == Capabilities(
        ffmpeg_version="9.9-fake", encoders=("aac", "h264_nvenc", "libx264"),
        hwaccels=("cuda",))


def test_a_slow_listing_on_a_busy_host_is_waited_for(tmp_path: Path) -> None:
    """Listing what the build has is required, so it gets its own, patient bound: a host busy
    at boot (a CI run's first agent waited 10 s for -version) slows it; only a device probe
    that hangs is a broken device."""
    fake = _fake_ffmpeg(tmp_path, prelude="import time\ntime.sleep(2.5)\n")
    found = discover_capabilities(str(fake), timeout_s=2)
    assert found.ffmpeg_version == "9.9-fake" and "libx264" in found.encoders
    assert "h264_qsv" not in found.encoders  # its probe still hangs past the 2 s bound


def test_discovery_without_ffmpeg(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover_capabilities(str(tmp_path / "no-ffmpeg"))


def test_vaapi_probe_uploads_frames_to_the_device() -> None:
    argv = ffmpeg._encoder_probe("ffmpeg", "h264_vaapi")
    assert argv[argv.index("-init_hw_device") + 1] == "vaapi=probe"
    assert argv[argv.index("-vf") + 1] == "format=nv12,hwupload"
    assert argv[-5:] == ["-c:v", "h264_vaapi", "-f", "null", "-"]


def test_probe_without_ffprobe(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ffmpeg.probe_duration_s("/srv/media/a.mp4", ffprobe=str(tmp_path / "no-ffprobe"))


def test_realtime_testsrc_is_paced_like_a_camera() -> None:
    from ffrtmp.agent.argv import build_argv
    from ffrtmp.jobspec import parse

    spec = parse({"input": "testsrc://?duration=5&realtime=1",
                  "outputs": [{"url": "file:///srv/media/rt.mp4", "preset": "h264-480p"}]}, ["/srv/media"])
    argv = build_argv(spec, progress_path="/tmp/p.txt")
    assert argv.count("-re") == 2
    paced = parse({"input": "testsrc://?duration=5&realtime=0",
                   "outputs": [{"url": "file:///srv/media/rt.mp4", "preset": "h264-480p"}]}, ["/srv/media"])
    assert "-re" not in build_argv(paced, progress_path="/tmp/p.txt")


# --- staged outputs ---


def test_files_and_vod_playlists_are_staged_live_playlists_and_pushes_are_not() -> None:
    vod = parse({"input": "/srv/media/in/a.mov",
                 "outputs": [{"url": "/srv/media/out/a.mp4", "preset": "copy"},
                             {"url": "/srv/media/hls/a.m3u8", "preset": "copy"}]}, ROOTS)
    argv = build_argv(vod, progress_path=PROGRESS, stage="j-1.2")
    assert argv[-1] == "/srv/media/hls/.a.m3u8.j-1.2.part"
    assert "/srv/media/hls/a_%05d.ts" in argv  # segments keep the names the playlist uses
    assert "/srv/media/out/.a.mp4.j-1.2.part" in argv and "/srv/media/out/a.mp4" not in argv
    assert outputs.staged_outputs(vod) == ["/srv/media/out/a.mp4", "/srv/media/hls/a.m3u8"]
    live = parse({"input": "rtmp://in.example.com/app/key",
                  "outputs": [{"url": "rtmp://out.example.com/app/key", "preset": "copy"},
                              {"url": "/srv/media/live/key.m3u8", "preset": "copy"},
                              {"url": "/srv/media/live/key.mkv", "preset": "copy"}]}, ROOTS)
    argv = build_argv(live, progress_path=PROGRESS, stage="j-1.1")
    assert "rtmp://out.example.com/app/key" in argv and "/srv/media/live/key.m3u8" in argv
    assert outputs.staged_outputs(live) == ["/srv/media/live/key.mkv"]


def test_settling_publishes_or_removes_and_can_be_repeated(tmp_path: Path) -> None:
    spec = parse({"input": f"{tmp_path}/in.mov",
                  "outputs": [{"url": f"{tmp_path}/a.mp4", "preset": "copy"},
                              {"url": f"{tmp_path}/b.mkv", "preset": "copy"}]},
                 [str(tmp_path)], check_filesystem=False)
    for name in ("a.mp4", "b.mkv"):
        Path(outputs.staging_path(str(tmp_path / name), "j.1")).write_text(name)
        Path(outputs.staging_path(str(tmp_path / name), "j.2")).write_text("failed attempt")
    assert outputs.settle_outputs(spec, "j.2", succeeded=False) == []
    assert outputs.settle_outputs(spec, "j.1", succeeded=True) == [str(tmp_path / "a.mp4"),
                                                                  str(tmp_path / "b.mkv")]
    assert outputs.settle_outputs(spec, "j.1", succeeded=True) == []  # a crash, then again
    assert outputs.settle_outputs(spec, "j.1", succeeded=False) == []  # never removes a final
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mkv"]
    assert (tmp_path / "a.mp4").read_text() == "a.mp4"
