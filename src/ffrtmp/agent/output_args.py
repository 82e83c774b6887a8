"""FFmpeg's argv for one output: its video, its audio and its container, by type.

Every workload shares these rules (an ordinary job, and each part of a split job), so a rung
is encoded the same way whether it is written whole or segment by segment.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import assert_never

from ffrtmp.agent.outputs import staging_path
from ffrtmp.jobspec import (
    AudioSettings,
    FileSink,
    GeneratedSource,
    HlsSink,
    JobSpec,
    PushSink,
    Sink,
    VideoSettings,
    format_number,
)

HLS_SEGMENT_S = 4
KEYFRAME_INTERVAL_S = 2  # divides the HLS segment length, so every rung cuts at the same points
_X26X = ("libx264", "libx265")
_CONTAINER_ARGS = {"mp4": ["-movflags", "+faststart"]}


def head(spec: JobSpec, progress_path: str, ffmpeg: str) -> list[str]:
    """The options every workload starts with; refuses what would tie it to its observer.

    ``progress_path`` must be an absolute file path: ``pipe:1`` or ``-`` would make the
    workload die of SIGPIPE when its watcher goes away. An uploaded output's path is relative
    until the agent has placed it in the work dir.
    """
    if not PurePosixPath(progress_path).is_absolute():
        raise ValueError(f"progress_path must be an absolute file path, got {progress_path!r}")
    for out in spec.outputs:
        if out.path is not None and not PurePosixPath(out.path).is_absolute():
            raise ValueError(f"output {out.url!r} is not placed yet: localize the spec first")
    return [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", progress_path, "-stats_period", "1"]


def frame_rate(spec: JobSpec, out: Sink) -> float | None:
    """The output's frame rate when it is known without probing."""
    if out.video.fps is not None:
        return out.video.fps
    if isinstance(spec.source, GeneratedSource):
        return spec.source.fps
    return None


def video_args(video: VideoSettings, fps: float | None, out: Sink) -> list[str]:
    args = ["-c:v", video.codec]
    if video.is_copy:
        return args
    if video.codec in _X26X and video.encoder_preset is not None:
        args += ["-preset", video.encoder_preset]
    if video.bitrate is not None:
        bps = video.bitrate.bps
        # Capped VBR: never above the target rate, averaged over a two-second buffer.
        args += ["-b:v", video.bitrate.text, "-maxrate", str(bps), "-bufsize", str(2 * bps)]
    if video.codec in _X26X:
        args += ["-pix_fmt", "yuv420p"]
    if fps is not None:
        args += ["-g", str(round(KEYFRAME_INTERVAL_S * fps))]
    else:
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})"]
    if video.codec == "libx265":
        args += ["-x265-params", "log-level=error"]
        if isinstance(out, FileSink) and out.container == "mp4":
            args += ["-tag:v", "hvc1"]  # the tag Apple players require for HEVC in MP4
    if video.size is not None:
        args += ["-s", f"{video.size[0]}x{video.size[1]}"]
    if video.fps is not None:
        args += ["-r", format_number(video.fps)]
    return args


def audio_args(audio: AudioSettings) -> list[str]:
    args = ["-c:a", audio.codec]
    if not audio.is_copy and audio.bitrate is not None:
        args += ["-b:a", audio.bitrate.text]
    return args


def muxer_args(spec: JobSpec, out: Sink, stage: str | None) -> list[str]:
    """The container and the target; with ``stage``, a staged file's hidden name."""
    match out:
        case PushSink():
            # A push is not seekable: skip the header rewrite FFmpeg would only warn about.
            return ["-f", "flv", "-flvflags", "no_duration_filesize", out.url]
        case HlsSink():
            # The segment name is a printf pattern, so a literal % in the path must be doubled.
            path = PurePosixPath(out.path)
            directory, stem = str(path.parent).replace("%", "%%"), path.stem.replace("%", "%%")
            return ["-f", "hls", "-hls_time", str(HLS_SEGMENT_S),
                    "-hls_playlist_type", "event" if spec.is_live else "vod",
                    "-hls_segment_filename", f"{directory}/{stem}_%05d.ts",
                    _target(out.path, stage)]
        case FileSink():
            return ["-f", out.container, *_CONTAINER_ARGS.get(out.container, []),
                    _target(out.path, stage)]
        case _:
            assert_never(out)


def _target(path: str, stage: str | None) -> str:
    return path if stage is None else staging_path(path, stage)
