"""FFmpeg as the farm uses it: argv from a JobSpec, progress from a file, node capabilities.

``build_argv`` is pure, so the whole command line is reviewable in a table test. FFmpeg writes
``-progress`` to a file, never a pipe: the workload must not die of SIGPIPE when the wrapper
or agent that watches it goes away. This module imports only the standard library,
``jobspec`` and the wrapper's file helpers, so the wrapper could use ``read_progress``
without pulling in the agent's stack.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ffrtmp.jobspec import (
    COPY,
    LIVE_INPUT_SCHEMES,
    JobSpec,
    Output,
    bitrate_bps,
    format_number,
    local_path,
    testsrc_params,
)
from ffrtmp.wrapper.common import fsync_dir

RW_TIMEOUT_US = 10_000_000  # a network input silent this long ends the job instead of hanging
HLS_SEGMENT_S = 4
KEYFRAME_INTERVAL_S = 2  # divides the HLS segment length, so every rung cuts at the same points
PROGRESS_TAIL_BYTES = 64 * 1024
HARDWARE_MARKERS = ("nvenc", "qsv", "vaapi", "amf", "v4l2m2m", "videotoolbox", "mediacodec")
_MUXERS = {".mp4": ["-f", "mp4", "-movflags", "+faststart"], ".mkv": ["-f", "matroska"]}


# --- argv ------------------------------------------------------------------------------------


def build_argv(spec: JobSpec, *, progress_path: str, ffmpeg: str = "ffmpeg",
               stage: str | None = None) -> list[str]:
    """The complete FFmpeg command for a job: one decode feeding every output.

    ``progress_path`` must be an absolute file path; anything else (``pipe:1``, ``-``) would
    tie the workload's life to its observer. With ``stage`` (unique per attempt), staged
    outputs are written to ``staging_path(…, stage)`` instead of their names (see
    ``staged_outputs``).
    """
    if not PurePosixPath(progress_path).is_absolute():
        raise ValueError(f"progress_path must be an absolute file path, got {progress_path!r}")
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", progress_path, "-stats_period", "1"]
    argv += _input_args(spec)
    for out in spec.outputs:
        argv += _output_args(spec, out, stage)
    return argv


# --- staged outputs ----------------------------------------------------------------------------


def staging_path(final: str, stage: str) -> str:
    """Where FFmpeg writes ``final`` until the job succeeds: hidden, in the same directory
    (so publishing it is one atomic rename), and unique to the attempt."""
    path = PurePosixPath(final)
    return str(path.with_name(f".{path.name}.{stage}.part"))


def staged_outputs(spec: JobSpec) -> list[str]:
    """The outputs that must not appear before the job succeeded.

    Files, and VOD playlists (their segments keep their names: only the playlist makes them
    a finished stream). A live job's event playlist is written in place, because viewers
    follow it while the job runs; it carries no ``#EXT-X-ENDLIST`` until FFmpeg ends it.
    """
    return [out.path for out in spec.outputs
            if out.path is not None and (out.kind == "file" or not spec.is_live)]


def settle_outputs(spec: JobSpec, stage: str, *, succeeded: bool) -> list[str]:
    """Move each staged output into place (success) or remove it; safe to repeat.

    Returns the outputs published now. A crash at any point leaves either the staged file
    (settled again at the next call) or the published one, never a torn name.
    """
    published = []
    for final in staged_outputs(spec):
        staged = Path(staging_path(final, stage))
        if not succeeded:
            staged.unlink(missing_ok=True)
        elif staged.exists():
            staged.replace(final)
            fsync_dir(staged.parent)
            published.append(final)
    return published


def output_dirs(spec: JobSpec) -> list[str]:
    """Directories that must exist before FFmpeg starts (it does not create them)."""
    dirs: list[str] = []
    for out in spec.outputs:
        if out.path is not None:
            parent = str(PurePosixPath(out.path).parent)
            if parent not in dirs:
                dirs.append(parent)
    return dirs


def _input_args(spec: JobSpec) -> list[str]:
    # A stored or generated input pushed to RTMP must be paced, or it floods the live server.
    realtime = ["-re"] if any(out.kind == "rtmp" for out in spec.outputs) else []
    if spec.input_kind == "testsrc":
        src = testsrc_params(spec.input)
        if src.realtime:
            realtime = ["-re"]
        duration = format_number(src.duration_s)
        return [*realtime, "-f", "lavfi", "-i",
                f"testsrc2=size={src.size}:rate={src.rate}:duration={duration}",
                *realtime, "-f", "lavfi", "-i",
                f"sine=frequency=1000:sample_rate=48000:duration={duration}"]
    if spec.input_kind == "url":
        if spec.input.partition(":")[0] in LIVE_INPUT_SCHEMES:
            realtime = []  # a live stream arrives in real time by itself
        return [*realtime, "-rw_timeout", str(RW_TIMEOUT_US), "-i", spec.input]
    return [*realtime, "-i", local_path(spec.input)]


def _output_args(spec: JobSpec, out: Output, stage: str | None) -> list[str]:
    if spec.input_kind == "testsrc":
        args = ["-map", "0:v", "-map", "1:a"]
    else:
        args = ["-map", "0:v:0?", "-map", "0:a:0?"]
    args += _video_args(spec, out)
    args += _audio_args(out)
    if spec.duration_s is not None:
        args += ["-t", format_number(spec.duration_s)]
    return args + _muxer_args(spec, out, stage)


def _frame_rate(spec: JobSpec, out: Output) -> float | None:
    if "fps" in out.settings:
        return float(out.settings["fps"])
    if spec.input_kind == "testsrc":
        return float(testsrc_params(spec.input).rate)
    return None


def _video_args(spec: JobSpec, out: Output) -> list[str]:
    settings = out.settings
    codec = settings["video_codec"]
    args = ["-c:v", codec]
    if codec == COPY:
        return args
    if codec in ("libx264", "libx265") and "encoder_preset" in settings:
        args += ["-preset", settings["encoder_preset"]]
    if "video_bitrate" in settings:
        bps = bitrate_bps(settings["video_bitrate"])
        # Capped VBR: never above the target rate, averaged over a two-second buffer.
        args += ["-b:v", settings["video_bitrate"], "-maxrate", str(bps),
                 "-bufsize", str(2 * bps)]
    if codec in ("libx264", "libx265"):
        args += ["-pix_fmt", "yuv420p"]
    fps = _frame_rate(spec, out)
    if fps is not None:
        args += ["-g", str(round(KEYFRAME_INTERVAL_S * fps))]
    else:
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})"]
    if codec == "libx265":
        args += ["-x265-params", "log-level=error"]
        if out.path is not None and PurePosixPath(out.path).suffix.lower() == ".mp4":
            args += ["-tag:v", "hvc1"]  # the tag Apple players require for HEVC in MP4
    if "size" in settings:
        args += ["-s", settings["size"]]
    if "fps" in settings:
        args += ["-r", settings["fps"]]
    return args


def _audio_args(out: Output) -> list[str]:
    codec = out.settings["audio_codec"]
    args = ["-c:a", codec]
    if codec != COPY and "audio_bitrate" in out.settings:
        args += ["-b:a", out.settings["audio_bitrate"]]
    return args


def _muxer_args(spec: JobSpec, out: Output, stage: str | None) -> list[str]:
    if out.kind == "rtmp":
        # A push is not seekable: skip the header rewrite FFmpeg would only warn about.
        return ["-f", "flv", "-flvflags", "no_duration_filesize", out.url]
    path = PurePosixPath(local_path(out.url))
    target = str(path)
    if stage is not None and target in staged_outputs(spec):
        target = staging_path(target, stage)
    if out.kind == "hls":
        # The segment name is a printf pattern, so a literal % in the path must be doubled.
        directory, stem = str(path.parent).replace("%", "%%"), path.stem.replace("%", "%%")
        segments = f"{directory}/{stem}_%05d.ts"
        return ["-f", "hls", "-hls_time", str(HLS_SEGMENT_S),
                "-hls_playlist_type", "event" if spec.is_live else "vod",
                "-hls_segment_filename", segments, target]
    return [*_MUXERS[path.suffix.lower()], target]


# --- progress ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """The latest complete report FFmpeg wrote to its ``-progress`` file."""

    out_time_s: float | None
    fps: float | None
    speed: float | None
    frame: int | None
    percent: float | None
    ended: bool


def read_progress(path: str, expected_duration_s: float | None) -> Progress | None:
    """Parse the last complete block of a ``-progress`` file; None until there is one.

    Only the file's tail is read, so polling a day-long job stays cheap.
    """
    try:
        with Path(path).open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - PROGRESS_TAIL_BYTES)
            handle.seek(start)
            tail = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    lines = tail.split("\n")[:-1]  # the last element is an unterminated (or empty) line
    if start > 0 and lines:
        lines = lines[1:]  # the first line may be cut in half
    block = _last_block(lines)
    if block is None:
        return None
    return _progress(block, expected_duration_s)


def _last_block(lines: list[str]) -> dict[str, str] | None:
    ends = [i for i, line in enumerate(lines) if line.startswith("progress=")]
    if not ends:
        return None
    first = ends[-2] + 1 if len(ends) > 1 else 0
    block: dict[str, str] = {}
    for line in lines[first:ends[-1] + 1]:
        key, sep, value = line.partition("=")
        if sep:
            block[key.strip()] = value.strip()
    return block


def _progress(block: dict[str, str], expected_duration_s: float | None) -> Progress:
    out_time_s = _out_time_s(block)
    percent = None
    if out_time_s is not None and expected_duration_s:
        percent = round(min(100.0, 100.0 * out_time_s / expected_duration_s), 1)
    frame = _float(block.get("frame"))
    return Progress(
        out_time_s=out_time_s,
        fps=_float(block.get("fps")),
        speed=_float(block.get("speed", "").removesuffix("x")),
        frame=int(frame) if frame is not None else None,
        percent=percent,
        ended=block.get("progress") == "end",
    )


def _out_time_s(block: dict[str, str]) -> float | None:
    # out_time_ms is microseconds too (a long-standing FFmpeg quirk), so prefer out_time_us.
    micros = _float(block.get("out_time_us", block.get("out_time_ms")))
    if micros is not None:
        return micros / 1e6 if micros >= 0 else None
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", block.get("out_time", ""))
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _float(value: str | None) -> float | None:
    """FFmpeg writes N/A (and once in a while garbage) where it has no value yet."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- capabilities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What this node can run; the master matches a job's ``capabilities()`` against it."""

    ffmpeg_version: str
    encoders: tuple[str, ...]
    hwaccels: tuple[str, ...]


def discover_capabilities(ffmpeg: str = "ffmpeg", *, timeout_s: float = 10) -> Capabilities:
    """Ask FFmpeg what it can do, keeping hardware only where it really works.

    A build lists NVENC or VAAPI whether or not the host has the device, so each hardware
    encoder and hwaccel is kept only if a one-frame encode (or device open) succeeds within
    ``timeout_s``. Raises FileNotFoundError when ``ffmpeg`` is missing, and
    CalledProcessError or TimeoutExpired when it can't even list what it has.
    """
    version = _ffmpeg_version(_run([ffmpeg, "-hide_banner", "-version"], timeout_s))
    encoders = _parse_encoders(_run([ffmpeg, "-hide_banner", "-encoders"], timeout_s))
    hwaccels = _parse_hwaccels(_run([ffmpeg, "-hide_banner", "-hwaccels"], timeout_s))
    software = [name for name in encoders if not is_hardware_encoder(name)]
    hardware = [name for name in encoders if is_hardware_encoder(name)]
    probes = [_encoder_probe(ffmpeg, name) for name in hardware]
    probes += [_hwaccel_probe(ffmpeg, name) for name in hwaccels]
    with ThreadPoolExecutor(max_workers=4) as pool:  # probes are independent processes
        works = list(pool.map(lambda argv: _succeeds(argv, timeout_s), probes))
    candidates = hardware + hwaccels
    working = {name for name, ok in zip(candidates, works, strict=True) if ok}
    working_hw = [name for name in hardware if name in working]
    working_accels = [name for name in hwaccels if name in working]
    return Capabilities(ffmpeg_version=version,
                        encoders=tuple(sorted({*software, *working_hw})),
                        hwaccels=tuple(sorted(set(working_accels))))


def is_hardware_encoder(name: str) -> bool:
    return any(marker in name for marker in HARDWARE_MARKERS)


def _run(argv: list[str], timeout_s: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=timeout_s, check=True, stdin=subprocess.DEVNULL)
    return done.stdout


def _succeeds(argv: list[str], timeout_s: float) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _ffmpeg_version(text: str) -> str:
    match = re.search(r"version (\S+)", text)
    return match.group(1) if match else "unknown"


def _parse_encoders(text: str) -> list[str]:
    """Video and audio encoder names from ``-encoders`` (subtitle encoders are no capability)."""
    names = []
    for line in text.splitlines():
        match = re.match(r"^ ([VA])[A-Z.]{5} (\S+)", line)
        if match and match.group(2) != "=":
            names.append(match.group(2))
    return names


def _parse_hwaccels(text: str) -> list[str]:
    lines = text.splitlines()
    if "Hardware acceleration methods:" in lines:
        lines = lines[lines.index("Hardware acceleration methods:") + 1:]
    return [line.strip() for line in lines if re.fullmatch(r"[a-z0-9_]+", line.strip())]


def _encoder_probe(ffmpeg: str, encoder: str) -> list[str]:
    # 320x240 rather than smaller: several hardware encoders refuse very small frames.
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    upload: list[str] = []
    if "vaapi" in encoder:  # VAAPI encoders only take frames already on the device
        argv += ["-init_hw_device", "vaapi=probe", "-filter_hw_device", "probe"]
        upload = ["-vf", "format=nv12,hwupload"]
    return [*argv, "-f", "lavfi", "-i", "nullsrc=size=320x240:rate=25", "-frames:v", "1",
            *upload, "-c:v", encoder, "-f", "null", "-"]


def _hwaccel_probe(ffmpeg: str, hwaccel: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-init_hw_device", hwaccel,
            "-f", "lavfi", "-i", "nullsrc=size=64x64:rate=25", "-frames:v", "1", "-f", "null", "-"]


# --- probing -----------------------------------------------------------------------------------


def probe_duration_s(path: str, ffprobe: str = "ffprobe", *, timeout_s: float = 30) -> float | None:
    """The container duration, for progress percentages of file inputs; None when unknown.

    Raises FileNotFoundError when ``ffprobe`` is missing, so a broken node isn't mistaken
    for an unreadable file.
    """
    argv = [ffprobe, "-v", "error", "-show_entries", "format=duration",
            "-of", "default=noprint_wrappers=1:nokey=1", "-i", path]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    duration = _float(done.stdout.strip())
    return duration if duration is not None and duration > 0 else None
