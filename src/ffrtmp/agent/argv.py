"""FFmpeg's argv for a job: one decode feeding every output, built from the typed spec.

``build_argv`` is pure, so the whole command line is reviewable in a table test. Each kind
of input and output has its rule here, chosen by type; FFmpeg writes ``-progress`` to a
file, never a pipe, so the workload does not die of SIGPIPE when its watcher goes away.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_never

from ffrtmp.agent.output_args import (
    HLS_SEGMENT_S,
    KEYFRAME_INTERVAL_S,
    audio_args,
    frame_rate,
    head,
    muxer_args,
    video_args,
)
from ffrtmp.agent.outputs import staged_outputs
from ffrtmp.agent.split_argv import step_argv
from ffrtmp.jobspec import (
    FileSource,
    GeneratedSource,
    JobSpec,
    RemoteFile,
    UrlSource,
    format_number,
)

__all__ = ["HLS_SEGMENT_S", "HTTP_RECONNECT", "KEYFRAME_INTERVAL_S", "RW_TIMEOUT_US",
           "build_argv"]

RW_TIMEOUT_US = 10_000_000  # a network input silent this long ends the job instead of hanging
# FFmpeg's http protocol reconnects on its own, resuming with a range request where it stopped.
HTTP_RECONNECT = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
                  "-reconnect_delay_max", "30"]


def build_argv(spec: JobSpec, *, progress_path: str, ffmpeg: str = "ffmpeg",
               stage: str | None = None, work: Path | None = None) -> list[str]:
    """The complete FFmpeg command for a job: one decode feeding every output.

    ``progress_path`` must be an absolute file path (see ``output_args.head``). With ``stage``
    (unique per attempt), staged outputs are written to ``staging_path(…, stage)`` instead of
    their names (see ``staged_outputs``). The parts of a split job have their own rules
    (``split_argv``); a stitch reads the concat lists written into ``work``.
    """
    if spec.step is not None:
        return step_argv(spec, progress_path=progress_path, ffmpeg=ffmpeg, stage=stage,
                         lists=None if work is None else str(work))
    argv = head(spec, progress_path, ffmpeg)
    argv += _input_args(spec)
    staged = set(staged_outputs(spec)) if stage is not None else set()
    for out in spec.outputs:
        argv += _map_args(spec)
        argv += video_args(out.video, frame_rate(spec, out), out)
        argv += audio_args(out.audio)
        if spec.duration_s is not None:
            argv += ["-t", format_number(spec.duration_s)]
        argv += muxer_args(spec, out, stage if out.path in staged else None)
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
