"""The parts of a split job: one typed step per kind, and where their intermediates live.

The master writes a ``step`` into each child spec it makes from a split job; the agent reads
it to know which part of the whole it runs. The workspace layout (its directory name, the
names of the segments and audio tracks inside it) is spelled here once; ``jobspec.split``
builds the children from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ffrtmp.contract import Step
from ffrtmp.jobspec import numbers
from ffrtmp.jobspec.encoding import AudioSettings, VideoSettings
from ffrtmp.jobspec.paths import STORE_PREFIX, Containment, remote_path
from ffrtmp.validation import (
    JOB_ID,
    FieldError,
    finite_number,
    integer,
    known_fields,
    string_keys,
    text,
)

MAX_SEGMENTS = 1000
MAX_FRAMES = 10**9
MAX_TRACKS = 16  # one per output at most (jobspec.spec.MAX_OUTPUTS)
WORKSPACE_PREFIX = ".ffrtmp-split-"
INTERMEDIATE_EXTENSION = ".mp4"  # segments and audio tracks: mp4, which concat and HLS take
START = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,9})?")  # exact decimal seconds, never a float
STEP_FIELDS: dict[Step, tuple[str, ...]] = {
    Step.PLAN: ("segment_s",),
    Step.SEGMENT: ("index", "start_s", "frames", "duration_s"),
    Step.AUDIO: ("duration_s",),
    Step.STITCH: ("frames", "durations", "audio", "duration_s"),
    Step.SWEEP: (),
}
CHILD_KINDS = tuple(STEP_FIELDS)  # a spec's step is one of these; the parent has none

_workspace_text = text(2048, strict=True)
_index = integer(0, MAX_SEGMENTS - 1)
_frames = integer(1, MAX_FRAMES)
_tracks = integer(0, MAX_TRACKS)


# --- the workspace layout ----------------------------------------------------------------------


def workspace(base: str, parent_id: str) -> str:
    """The directory of a split job's intermediates, inside ``base`` (a store or media-root dir)."""
    return f"{base}/{WORKSPACE_PREFIX}{parent_id}"


def segment_name(index: int, rung: int) -> str:
    """The video of cut ``index`` for output ``rung``."""
    return f"seg-{index:05d}.r{rung}{INTERMEDIATE_EXTENSION}"


def audio_name(track: int) -> str:
    """Audio track ``track`` (one per distinct audio encoding among the outputs)."""
    return f"audio.a{track}{INTERMEDIATE_EXTENSION}"


def distinct_audio(audio: Iterable[AudioSettings]) -> tuple[AudioSettings, ...]:
    """The audio tracks: each distinct encoding once, in the order the outputs first use it."""
    return tuple(dict.fromkeys(audio))


# --- the steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    kind: ClassVar[Step]
    parent: str  # the split job's id
    workspace: str  # store:///… or a media-root directory: the intermediates' place

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {"kind": self.kind.value, "parent": self.parent,
                                  "workspace": self.workspace}
        for name in STEP_FIELDS[self.kind]:
            value = getattr(self, name)
            doc[name] = list(value) if isinstance(value, tuple) else value
        return doc


@dataclass(frozen=True)
class PlanStep(_Part):
    """Probe the source and cut it at keyframes near every ``segment_s``."""

    kind: ClassVar[Step] = Step.PLAN
    segment_s: float


@dataclass(frozen=True)
class SegmentStep(_Part):
    """Encode the video of one cut: ``frames`` frames from ``start_s``, for every rung."""

    kind: ClassVar[Step] = Step.SEGMENT
    index: int
    start_s: str  # exact decimal text, as the plan measured it
    frames: int
    duration_s: float


@dataclass(frozen=True)
class AudioStep(_Part):
    """Encode the audio of the whole file once per audio track."""

    kind: ClassVar[Step] = Step.AUDIO
    duration_s: float


@dataclass(frozen=True)
class StitchStep(_Part):
    """Join the segments without re-encoding, mux ``audio`` tracks in, deliver the outputs."""

    kind: ClassVar[Step] = Step.STITCH
    frames: tuple[int, ...]  # per segment
    durations: tuple[float, ...]  # per segment
    audio: int  # how many audio tracks the workspace holds (0: the source has no audio)
    duration_s: float

    @property
    def segments(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class SweepStep(_Part):
    """Remove the workspace after a cancel."""

    kind: ClassVar[Step] = Step.SWEEP


PartStep = PlanStep | SegmentStep | AudioStep | StitchStep | SweepStep


def needed(requires: Iterable[str], encodings: Iterable[tuple[VideoSettings, AudioSettings]],
           kind: Step | None) -> tuple[str, ...]:
    """What a node must have to run a job: its ``requires`` and the codecs its step encodes.

    An ordinary job encodes both streams; a segment only video, an audio part only audio; the
    plan, stitch and sweep encode nothing (the stitch copies).
    """
    wanted = set(requires)
    for video, audio in encodings:
        streams = {None: (video, audio), Step.SEGMENT: (video,), Step.AUDIO: (audio,)}
        wanted.update(s.codec for s in streams.get(kind, ()) if not s.is_copy)
    return tuple(sorted(wanted))


# --- parsing ------------------------------------------------------------------------------------


def parse_step(value: Any, containment: Containment) -> PartStep:
    """Validate a child spec's ``step``; errors name ``step.<field>``."""
    doc = string_keys(value, "step")
    kind = doc.get("kind")
    if kind not in CHILD_KINDS:
        raise FieldError("step.kind", f"must be one of {', '.join(CHILD_KINDS)}")
    fields = STEP_FIELDS[Step(kind)]
    known_fields(doc, ("kind", "parent", "workspace", *fields), "step.")
    for name in ("parent", "workspace", *fields):
        if name not in doc:
            raise FieldError(f"step.{name}", "is required")
    parent = JOB_ID(doc["parent"], "step.parent")
    place = _workspace(doc["workspace"], parent, containment)
    return _typed(Step(kind), parent, place, doc)


def _typed(kind: Step, parent: str, place: str, doc: Mapping[str, Any]) -> PartStep:
    if kind == Step.PLAN:
        return PlanStep(parent, place, segment_length(doc["segment_s"], "step.segment_s"))
    if kind == Step.SEGMENT:
        return SegmentStep(parent, place, _index(doc["index"], "step.index"),
                           start_text(doc["start_s"], "step.start_s"),
                           _frames(doc["frames"], "step.frames"),
                           numbers.duration(doc["duration_s"], "step.duration_s"))
    if kind == Step.AUDIO:
        return AudioStep(parent, place, numbers.duration(doc["duration_s"], "step.duration_s"))
    if kind == Step.STITCH:
        return _stitch(parent, place, doc)
    return SweepStep(parent, place)


def _stitch(parent: str, place: str, doc: Mapping[str, Any]) -> StitchStep:
    frames = _bounded_list(doc["frames"], "step.frames")
    durations = _bounded_list(doc["durations"], "step.durations")
    if len(durations) != len(frames):
        raise FieldError("step.durations", "must have one duration per segment (as many as frames)")
    return StitchStep(
        parent, place,
        frames=tuple(_frames(n, f"step.frames[{i}]") for i, n in enumerate(frames)),
        durations=tuple(numbers.duration(d, f"step.durations[{i}]")
                        for i, d in enumerate(durations)),
        audio=_tracks(doc["audio"], "step.audio"),
        duration_s=numbers.duration(doc["duration_s"], "step.duration_s"))


def _bounded_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise FieldError(where, "must be a list with one item per segment")
    if len(value) > MAX_SEGMENTS:
        raise FieldError(where, f"must have at most {MAX_SEGMENTS} items")
    return value


def _workspace(value: Any, parent: str, containment: Containment) -> str:
    """A store:/// or media-root directory named for its parent, so a sweep removes only it."""
    place = _workspace_text(value, "step.workspace")
    if place.startswith("store:"):
        if not place.startswith(STORE_PREFIX):
            raise FieldError("step.workspace", "a store URL must look like store:///path")
        remote_path(place, "step.workspace")
    else:
        place = containment.check(place, "step.workspace")
    if place.rsplit("/", 1)[-1] != f"{WORKSPACE_PREFIX}{parent}":
        raise FieldError("step.workspace", f"must be a directory named {WORKSPACE_PREFIX}{parent}")
    return place


def start_text(value: Any, where: str) -> str:
    """A cut's start: decimal text, kept exact (FFmpeg gets the same digits the probe gave)."""
    if not isinstance(value, str) or not START.fullmatch(value):
        raise FieldError(where, 'must be decimal seconds as text, such as "36.000000"')
    if float(value) > numbers.MAX_DURATION_S:
        raise FieldError(where, f"must be at most {numbers.format_number(numbers.MAX_DURATION_S)}"
                                " seconds")
    return value


def segment_length(value: Any, where: str) -> float:
    """A split's target segment length: at least one second, at most the longest job."""
    number = finite_number(value, where)
    if not 1 <= number <= numbers.MAX_DURATION_S:
        raise FieldError(where, f"must be between 1 and "
                                f"{numbers.format_number(numbers.MAX_DURATION_S)} seconds")
    return number
