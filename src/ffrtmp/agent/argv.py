"""FFmpeg's argv for a job: one decode feeding every output, built from the typed spec.

``build_argv`` is pure, so the whole command line is reviewable in a table test. Each kind
of input and output has its rule here, chosen by type; FFmpeg writes ``-progress`` to a
file, never a pipe, so the workload does not die of SIGPIPE when its watcher goes away.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import assert_never

from ffrtmp.agent.outputs import staged_outputs, staging_path
from ffrtmp.jobspec import (
    AudioSettings,
    FileSink,
    FileSource,
    GeneratedSource,
    HlsSink,
    JobSpec,
    PushSink,
    RemoteFile,
    Sink,
    UrlSource,
    VideoSettings,
    format_number,
)

RW_TIMEOUT_US = 10_000_000  # a network input silent this long ends the job instead of hanging
# FFmpeg's http protocol reconnects on its own, resuming with a range request where it stopped.
HTTP_RECONNECT = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
                  "-reconnect_delay_max", "30"]
HLS_SEGMENT_S = 4
KEYFRAME_INTERVAL_S = 2  # divides the HLS segment length, so every rung cuts at the same points
_X26X = ("libx264", "libx265")
_CONTAINER_ARGS = {"mp4": ["-movflags", "+faststart"]}


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
    for out in spec.outputs:  # an uploaded output's path is relative until it is localized
        if out.path is not None and not PurePosixPath(out.path).is_absolute():
            raise ValueError(f"output {out.url!r} is not placed yet: localize the spec first")
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", progress_path, "-stats_period", "1"]
    argv += _input_args(spec)
    staged = set(staged_outputs(spec)) if stage is not None else set()
    for out in spec.outputs:
        argv += _map_args(spec)
        argv += _video_args(out.video, _frame_rate(spec, out), out)
        argv += _audio_args(out.audio)
        if spec.duration_s is not None:
            argv += ["-t", format_number(spec.duration_s)]
        argv += _muxer_args(spec, out, stage if out.path in staged else None)
    return argv


def _input_args(spec: JobSpec) -> list[str]:
    # A stored or generated input pushed to RTMP must be paced, or it floods the live server.
    realtime = ["-re"] if spec.pushes else []
    source = spec.source
    match source:
        case GeneratedSource():
            realtime = ["-re"] if source.realtime else realtime
            duration = format_number(source.duration_s)
            return [*realtime, "-f", "lavfi", "-i",
                    f"testsrc2=size={source.size}:rate={source.rate}:duration={duration}",
                    *realtime, "-f", "lavfi", "-i",
                    f"sine=frequency=1000:sample_rate=48000:duration={duration}"]
        case UrlSource():
            realtime = [] if source.is_live else realtime  # a live stream arrives in real time
            reconnect = HTTP_RECONNECT if source.scheme in ("http", "https") else []
            return [*realtime, "-rw_timeout", str(RW_TIMEOUT_US), *reconnect, "-i", source.url]
        case RemoteFile():
            raise ValueError("a remote file input is staged first: localize the spec")
        case FileSource():
            return [*realtime, "-i", source.path]
        case _:
            assert_never(source)


def _map_args(spec: JobSpec) -> list[str]:
    if isinstance(spec.source, GeneratedSource):  # video and tone are two lavfi inputs
        return ["-map", "0:v", "-map", "1:a"]
    return ["-map", "0:v:0?", "-map", "0:a:0?"]


def _frame_rate(spec: JobSpec, out: Sink) -> float | None:
    if out.video.fps is not None:
        return out.video.fps
    if isinstance(spec.source, GeneratedSource):
        return spec.source.fps
    return None


def _video_args(video: VideoSettings, fps: float | None, out: Sink) -> list[str]:
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


def _audio_args(audio: AudioSettings) -> list[str]:
    args = ["-c:a", audio.codec]
    if not audio.is_copy and audio.bitrate is not None:
        args += ["-b:a", audio.bitrate.text]
    return args


def _muxer_args(spec: JobSpec, out: Sink, stage: str | None) -> list[str]:
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
