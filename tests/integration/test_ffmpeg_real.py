"""The built argv run by real FFmpeg, with every output checked by ffprobe."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ffrtmp.agent import argv as ffmpeg_argv
from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.ffmpeg import discover_capabilities, is_hardware_encoder, probe_duration_s
from ffrtmp.agent.outputs import output_dirs
from ffrtmp.jobspec import JobSpec, parse
from ffrtmp.progress import read_progress
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="needs ffmpeg and ffprobe on PATH")

# Small and fast: every rung is tiny and x264/x265 run at ultrafast.
TINY = {"size": "160x120", "encoder_preset": "ultrafast", "video_bitrate": "200k"}
RUN_TIMEOUT_S = 60


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


def run(spec: JobSpec, progress: Path) -> None:
    for directory in output_dirs(spec):
        Path(directory).mkdir(parents=True, exist_ok=True)
    argv = build_argv(spec, progress_path=str(progress))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"ffmpeg failed ({done.returncode}): {done.stderr}"


def probe(path: Path) -> dict[str, Any]:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                           "format=duration:stream=codec_type,codec_name,width,height",
                           "-of", "json", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    info = json.loads(done.stdout)
    streams = {s["codec_type"]: s for s in info["streams"]}
    return {"video": streams.get("video"), "audio": streams.get("audio"),
            "duration": float(info["format"]["duration"])}


def assert_media(path: Path, codec: str, size: str, duration: float,
                 audio: str | None = "aac") -> None:
    info = probe(path)
    width, height = (int(n) for n in size.split("x"))
    assert info["video"]["codec_name"] == codec
    assert (info["video"]["width"], info["video"]["height"]) == (width, height)
    assert info["duration"] == pytest.approx(duration, abs=0.25)
    assert (info["audio"] or {}).get("codec_name") == audio


def assert_finished(progress: Path, spec: JobSpec) -> None:
    report = read_progress(str(progress), spec.expected_duration_s())
    assert report is not None
    assert report.ended
    assert report.percent == 100.0


def test_testsrc_to_mp4(media: Path, tmp_path: Path) -> None:
    spec = parse({"input": "testsrc://?duration=2&size=320x240&rate=30",
                  "outputs": [{"url": f"file://{media}/out/a.mp4", "preset": "h264-480p",
                               **TINY, "size": "320x240"}]}, [str(media)])
    run(spec, tmp_path / "progress")
    assert_media(media / "out" / "a.mp4", "h264", "320x240", 2.0)
    assert_finished(tmp_path / "progress", spec)


def test_ladder_from_one_decode(media: Path, tmp_path: Path) -> None:
    spec = parse({"input": "testsrc://?duration=2&size=320x240",
                  "outputs": [
                      {"url": f"{media}/ladder/a-240.mp4", "preset": "h264-720p", **TINY,
                       "size": "320x240"},
                      {"url": f"{media}/ladder/a-120.mp4", "preset": "h264-360p", **TINY}]},
                 [str(media)])
    run(spec, tmp_path / "progress")
    assert_media(media / "ladder" / "a-240.mp4", "h264", "320x240", 2.0)
    assert_media(media / "ladder" / "a-120.mp4", "h264", "160x120", 2.0)
    assert_finished(tmp_path / "progress", spec)


def test_hls(media: Path, tmp_path: Path) -> None:
    spec = parse({"input": "testsrc://?duration=6&size=160x120&rate=25",
                  "outputs": [{"url": f"{media}/hls/show/index.m3u8", "preset": "h264-360p",
                               **TINY}]}, [str(media)])
    run(spec, tmp_path / "progress")
    playlist = (media / "hls" / "show" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
    assert "#EXT-X-ENDLIST" in playlist
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert segments[:2] == ["index_00000.ts", "index_00001.ts"]
    for segment in segments:
        assert (media / "hls" / "show" / segment).stat().st_size > 0
    assert_media(media / "hls" / "show" / "index_00000.ts", "h264", "160x120", 4.0)
    assert_finished(tmp_path / "progress", spec)


def test_h265_to_mkv(media: Path, tmp_path: Path) -> None:
    spec = parse({"input": "testsrc://?duration=2&size=320x240",
                  "outputs": [{"url": f"{media}/a.mkv", "preset": "h265-1080p", **TINY}]},
                 [str(media)])
    run(spec, tmp_path / "progress")
    assert_media(media / "a.mkv", "hevc", "160x120", 2.0)


def test_copy_of_a_generated_file(media: Path, tmp_path: Path) -> None:
    source = parse({"input": "testsrc://?duration=2&size=160x120",
                    "outputs": [{"url": f"{media}/in/source.mp4", "preset": "h264-360p",
                                 **TINY}]}, [str(media)])
    run(source, tmp_path / "progress-source")
    spec = parse({"input": f"{media}/in/source.mp4",
                  "outputs": [{"url": f"{media}/out/copy.mkv", "preset": "copy"}]},
                 [str(media)])
    run(spec, tmp_path / "progress")
    assert_media(media / "out" / "copy.mkv", "h264", "160x120", 2.0)
    assert probe_duration_s(str(media / "in" / "source.mp4")) == pytest.approx(2.0, abs=0.1)


def test_duration_cap(media: Path, tmp_path: Path) -> None:
    spec = parse({"input": "testsrc://?duration=30&size=160x120",
                  "outputs": [{"url": f"{media}/capped.mp4", "preset": "h264-360p", **TINY}],
                  "duration_s": 1}, [str(media)])
    assert spec.expected_duration_s() == 1.0
    run(spec, tmp_path / "progress")
    assert_media(media / "capped.mp4", "h264", "160x120", 1.0)
    assert_finished(tmp_path / "progress", spec)


# --- live: a real RTMP peer, played by a second ffmpeg in listen mode -------------------------


def _listening(proc: subprocess.Popen[bytes], port: int) -> bool:
    return any(conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
               for conn in psutil.Process(proc.pid).net_connections(kind="tcp"))


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (RTMP peers, jobs); each is stopped and reaped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_rtmp_push_is_paced_to_real_time(media: Path, tmp_path: Path,
                                         started: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    received = media / "received.flv"
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-listen", "1",
         "-i", f"rtmp://127.0.0.1:{port}/live/key", "-c", "copy", "-f", "flv", str(received)],
        stdin=subprocess.DEVNULL)
    started.append(server)
    wait_until(lambda: _listening(server, port), 10, f"the RTMP listener on port {port}")
    spec = parse({"input": "testsrc://?duration=2&size=160x120&rate=25",
                  "outputs": [{"url": f"rtmp://127.0.0.1:{port}/live/key",
                               "preset": "h264-360p", **TINY}]}, [str(media)])
    started = time.monotonic()
    run(spec, tmp_path / "progress")
    assert time.monotonic() - started >= 1.8  # -re: two seconds of video take two seconds
    assert server.wait(timeout=10) == 0
    assert_media(received, "h264", "160x120", 2.0)


def test_dead_rtmp_input_ends_the_job(media: Path, tmp_path: Path,
                                      started: list[subprocess.Popen[bytes]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg_argv, "RW_TIMEOUT_US", 1_000_000)
    port = free_port()
    # Unpaced, so the job's stream probe fills at once; the stream lasts far longer than the test.
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3600",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-f", "flv", "-listen", "1", f"rtmp://127.0.0.1:{port}/live/cam"],
        stdin=subprocess.DEVNULL)
    started.append(publisher)
    wait_until(lambda: _listening(publisher, port), 10, f"the RTMP publisher on port {port}")
    spec = parse({"input": f"rtmp://127.0.0.1:{port}/live/cam",
                  "outputs": [{"url": f"{media}/live/cam.m3u8", "preset": "copy"}]},
                 [str(media)])
    assert spec.is_live
    progress = tmp_path / "progress"
    for directory in output_dirs(spec):
        Path(directory).mkdir(parents=True, exist_ok=True)
    job = subprocess.Popen(build_argv(spec, progress_path=str(progress)),
                           stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(job)
    wait_until(lambda: _received_video(progress), 10, "the job to receive video")
    publisher.send_signal(signal.SIGSTOP)  # the stream goes silent without closing
    assert job.wait(timeout=15) == 0
    publisher.kill()
    report = read_progress(str(progress), None)
    assert report is not None
    assert report.ended
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in (media / "live" / "cam.m3u8").read_text()


def _received_video(progress: Path) -> bool:
    report = read_progress(str(progress), None)
    return report is not None and bool(report.out_time_s)


# --- the machine itself ----------------------------------------------------------------------


def test_discover_capabilities_here() -> None:
    caps = discover_capabilities()
    assert caps.ffmpeg_version
    assert {"libx264", "aac"} <= set(caps.encoders)
    assert not [name for name in caps.encoders if is_hardware_encoder(name)]


def test_probe_duration_of_something_that_is_not_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert probe_duration_s(str(junk)) is None
    assert probe_duration_s(str(tmp_path / "absent.mp4")) is None
