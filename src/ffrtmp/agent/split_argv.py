"""FFmpeg's argv for the workloads of a split job: a segment, the audio, the stitch.

A segment seeks to its keyframe (``-ss`` before ``-i``: the demuxer lands on that keyframe)
and encodes exactly ``frames`` video frames for every rung in one decode, so segments meet
frame for frame. The audio is encoded once for the whole file: per-segment audio would carry
encoder priming at every seam. The stitch joins each rung's segments with the concat demuxer
and copies: nothing is encoded twice. Its list gives every segment but the last its exact
duration from the plan, because an MP4's own duration is rounded to its movie timescale and
the error would add up seam by seam.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path, PurePosixPath

from ffrtmp.agent.output_args import audio_args, frame_rate, head, muxer_args, video_args
from ffrtmp.agent.outputs import staged_outputs
from ffrtmp.jobspec import FileSource, JobSpec, Source
from ffrtmp.jobspec.split import audio_name, segment_name, track_of
from ffrtmp.jobspec.steps import AudioStep, SegmentStep, StitchStep

CONCAT_LIST = "concat.r{rung}.txt"  # one per rung, in the directory the stitch is given


def step_argv(spec: JobSpec, *, progress_path: str, ffmpeg: str = "ffmpeg",
              stage: str | None = None, lists: str | None = None) -> list[str]:
    """The command of a segment, audio or stitch child (``lists``: where the stitch's concat
    lists were written by ``write_concat_lists``)."""
    argv = head(spec, progress_path, ffmpeg)
    step = spec.step
    if isinstance(step, SegmentStep):
        return argv + _segment(spec, step, stage)
    if isinstance(step, AudioStep):
        return argv + _audio(spec, stage)
    if isinstance(step, StitchStep):
        if lists is None:
            raise ValueError("a stitch reads its concat lists: write_concat_lists first")
        return argv + _stitch(spec, step, Path(lists), stage)
    raise ValueError(f"a {spec.step and spec.step.kind} step is run by the agent, not FFmpeg")


def _segment(spec: JobSpec, step: SegmentStep, stage: str | None) -> list[str]:
    args = ["-ss", step.start_s, "-i", _local(spec.source)]
    staged = set(staged_outputs(spec)) if stage is not None else set()
    for out in spec.outputs:
        args += ["-map", "0:v:0", "-an", "-frames:v", str(step.frames)]
        args += video_args(out.video, frame_rate(spec, out), out)
        args += muxer_args(spec, out, stage if out.path in staged else None)
    return args


def _audio(spec: JobSpec, stage: str | None) -> list[str]:
    args = ["-i", _local(spec.source)]
    staged = set(staged_outputs(spec)) if stage is not None else set()
    for out in spec.outputs:
        args += ["-map", "0:a:0", "-vn", *audio_args(out.audio)]
        args += muxer_args(spec, out, stage if out.path in staged else None)
    return args


def _stitch(spec: JobSpec, step: StitchStep, lists: Path, stage: str | None) -> list[str]:
    args: list[str] = []
    for rung in range(len(spec.outputs)):
        args += ["-f", "concat", "-safe", "0", "-i", str(lists / CONCAT_LIST.format(rung=rung))]
    local = _locals(spec)
    for track in range(step.audio):
        args += ["-i", local[audio_name(track)]]
    staged = set(staged_outputs(spec)) if stage is not None else set()
    for rung, out in enumerate(spec.outputs):
        args += ["-map", f"{rung}:v:0"]
        if step.audio:
            args += ["-map", f"{len(spec.outputs) + track_of(spec, rung)}:a:0"]
        args += ["-c", "copy", *muxer_args(spec, out, stage if out.path in staged else None)]
    return args


def write_concat_lists(spec: JobSpec, directory: Path) -> list[Path]:
    """Write the stitch's concat list of every rung into ``directory`` (before launch)."""
    step = spec.step
    if not isinstance(step, StitchStep):
        raise ValueError("only a stitch has concat lists")
    local = _locals(spec)
    written = []
    for rung in range(len(spec.outputs)):
        lines = []
        for index in range(step.segments):
            lines.append(f"file {_quoted(local[segment_name(index, rung)])}")
            if index + 1 < step.segments:  # the last one runs to its own end
                lines.append(f"duration {Decimal(repr(step.durations[index]))}")
        path = directory / CONCAT_LIST.format(rung=rung)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _locals(spec: JobSpec) -> dict[str, str]:
    """Each intermediate's local file, by its name (inbox copies keep the object's name)."""
    return {PurePosixPath(path).name: path for path in map(_local, spec.reads())}


def _local(source: Source) -> str:
    if not isinstance(source, FileSource):
        raise ValueError(f"{source.url!r} is not local: localize the spec first")
    return source.path


def _quoted(path: str) -> str:
    """A concat-list path: single-quoted, with each ' written as '\\''."""
    return "'" + path.replace("'", "'\\''") + "'"
