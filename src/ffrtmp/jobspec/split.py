"""A split job's children: the plan, one segment per cut, the audio, the stitch, the sweep.

The master builds each child spec here from the parent's canonical dict, so the master and
the agent agree on every name in the workspace without either spelling it. The builders are
pure: no clock, no ids minted, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ffrtmp.contract import Step
from ffrtmp.jobspec import numbers
from ffrtmp.jobspec.encoding import AudioSettings, VideoSettings, encoding
from ffrtmp.jobspec.spec import JobSpec, SpecError
from ffrtmp.jobspec.split_rules import NO_PLACE, base_of
from ffrtmp.jobspec.steps import (
    MAX_FRAMES,
    MAX_SEGMENTS,
    AudioStep,
    PartStep,
    PlanStep,
    SegmentStep,
    StitchStep,
    SweepStep,
    audio_name,
    distinct_audio,
    needed,
    segment_name,
    start_text,
    workspace,
)
from ffrtmp.validation import FieldError, boolean, integer, known_fields, string_keys

__all__ = ["Child", "Cut", "Plan", "audio_name", "audio_tracks", "part_children", "plan_child",
           "segment_name", "stitch_child", "sweep_child", "track_of", "workspace",
           "workspace_base"]

PLAN_FIELDS = ("segments", "audio", "duration_s", "frames")
CUT_FIELDS = ("start_s", "frames", "duration_s")
_frames = integer(1, MAX_FRAMES)
_total_frames = integer(1, MAX_FRAMES * MAX_SEGMENTS)


# --- where the intermediates go ------------------------------------------------------------------


def workspace_base(spec: JobSpec) -> str:
    """The directory that holds the workspace: of the first store or media-root output, else
    of the input. A parsed split spec always has one (``parse`` refuses it otherwise)."""
    base = base_of(spec.source, spec.outputs)
    if base is None:
        raise SpecError("split", NO_PLACE)
    return base


def audio_tracks(spec: JobSpec) -> tuple[AudioSettings, ...]:
    """One audio track per distinct audio encoding among the outputs, in output order."""
    return distinct_audio(out.audio for out in spec.outputs)


def track_of(spec: JobSpec, rung: int) -> int:
    """The audio track output ``rung`` muxes in."""
    return audio_tracks(spec).index(spec.outputs[rung].audio)


# --- what the plan step reports -------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """One segment: ``frames`` video frames from ``start_s`` (exact decimal text)."""

    start_s: str
    frames: int
    duration_s: float

    def to_dict(self) -> dict[str, object]:
        return {"start_s": self.start_s, "frames": self.frames, "duration_s": self.duration_s}


@dataclass(frozen=True)
class Plan:
    """The cuts of a source at its keyframes, whether it has audio, and its length."""

    segments: tuple[Cut, ...]
    audio: bool
    duration_s: float
    frames: int  # the source's video frames: the sum of the segments'

    @classmethod
    def from_dict(cls, value: Any, where: str = "plan") -> Plan:
        """Validate an agent's report; raises FieldError naming ``<where>.<field>``."""
        doc = string_keys(value, where)
        known_fields(doc, PLAN_FIELDS, f"{where}.")
        for name in PLAN_FIELDS:
            if name not in doc:
                raise FieldError(f"{where}.{name}", "is required")
        plan = cls(segments=_cuts(doc["segments"], f"{where}.segments"),
                   audio=boolean(doc["audio"], f"{where}.audio"),
                   duration_s=numbers.duration(doc["duration_s"], f"{where}.duration_s"),
                   frames=_total_frames(doc["frames"], f"{where}.frames"))
        if sum(cut.frames for cut in plan.segments) != plan.frames:
            raise FieldError(f"{where}.frames", "must be the sum of the segments' frames")
        return plan

    def to_dict(self) -> dict[str, object]:
        return {"segments": [cut.to_dict() for cut in self.segments], "audio": self.audio,
                "duration_s": self.duration_s, "frames": self.frames}


def _cuts(value: Any, where: str) -> tuple[Cut, ...]:
    if not isinstance(value, list) or not value:
        raise FieldError(where, "must be a list of at least one segment")
    if len(value) > MAX_SEGMENTS:
        raise FieldError(where, f"must have at most {MAX_SEGMENTS} segments")
    cuts: list[Cut] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        doc = string_keys(item, at)
        known_fields(doc, CUT_FIELDS, f"{at}.")
        for name in CUT_FIELDS:
            if name not in doc:
                raise FieldError(f"{at}.{name}", "is required")
        cut = Cut(start_s=start_text(doc["start_s"], f"{at}.start_s"),
                  frames=_frames(doc["frames"], f"{at}.frames"),
                  duration_s=numbers.duration(doc["duration_s"], f"{at}.duration_s"))
        if cuts and _seconds(cut.start_s) <= _seconds(cuts[-1].start_s):
            raise FieldError(f"{at}.start_s", "must be later than the previous segment's start")
        cuts.append(cut)
    return tuple(cuts)


def _seconds(start: str) -> tuple[int, int]:
    """Decimal text as an exact pair (whole, nanoseconds), for ordering without floats."""
    whole, _, fraction = start.partition(".")
    return int(whole), int(fraction.ljust(9, "0"))


# --- the children --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A child job as the master inserts it: its step, its spec, what a node needs to run it."""

    step: Step
    spec: dict[str, Any]
    capabilities: tuple[str, ...]


def plan_child(parent_doc: Mapping[str, Any], parent_id: str, workspace: str) -> Child:
    """The probe: no outputs; it reports a ``Plan``."""
    segment_s = float(parent_doc["split"]["segment_s"])
    return _child(parent_doc, [], PlanStep(parent_id, workspace, segment_s))


def part_children(parent_doc: Mapping[str, Any], parent_id: str, workspace: str,
                  plan: Plan) -> tuple[Child, ...]:
    """The audio child if any, then one segment child per cut (every rung in one decode).

    The audio comes first because parts are claimed oldest first: queued last, it would start
    only when a node had finished its last segment and then run alone while the others idle.
    """
    rungs = list(parent_doc["outputs"])
    children = []
    if plan.audio:
        tracks = [_renamed(out, f"{workspace}/{audio_name(track)}")
                  for track, out in enumerate(_first_of_each_track(rungs))]
        children.append(_child(parent_doc, tracks, AudioStep(parent_id, workspace,
                                                             plan.duration_s)))
    children += [
        _child(parent_doc,
               [_renamed(out, f"{workspace}/{segment_name(index, rung)}")
                for rung, out in enumerate(rungs)],
               SegmentStep(parent_id, workspace, index, cut.start_s, cut.frames, cut.duration_s))
        for index, cut in enumerate(plan.segments)]
    return tuple(children)


def stitch_child(parent_doc: Mapping[str, Any], parent_id: str, workspace: str,
                 plan: Plan) -> Child:
    """The join: the parent's own outputs, from every segment and audio track."""
    tracks = len(_first_of_each_track(parent_doc["outputs"])) if plan.audio else 0
    step = StitchStep(parent_id, workspace, frames=tuple(cut.frames for cut in plan.segments),
                      durations=tuple(cut.duration_s for cut in plan.segments), audio=tracks,
                      duration_s=plan.duration_s)
    return _child(parent_doc, list(parent_doc["outputs"]), step)


def sweep_child(parent_doc: Mapping[str, Any], parent_id: str, workspace: str) -> Child:
    """The cleanup after a cancel: no outputs; it removes the workspace."""
    return _child(parent_doc, [], SweepStep(parent_id, workspace))


def _child(parent_doc: Mapping[str, Any], outputs: list[Any], step: PartStep) -> Child:
    """The parent's doc without ``split``, with these outputs and this step."""
    spec = {key: value for key, value in parent_doc.items() if key not in ("split", "step")}
    spec["outputs"] = outputs
    spec["step"] = step.to_dict()
    requires = parent_doc.get("requires") or []
    return Child(step.kind, spec, needed(requires, _encodings(outputs), step.kind))


def _renamed(out: Mapping[str, Any], url: str) -> dict[str, Any]:
    return {**out, "url": url}


def _encodings(outputs: Sequence[Mapping[str, Any]]) -> list[tuple[VideoSettings, AudioSettings]]:
    """Each output's typed encoding, by the same rules ``parse`` applies."""
    return [encoding(out["preset"], out, f"outputs[{index}]") for index, out in enumerate(outputs)]


def _first_of_each_track(outputs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The first output using each audio track, in track order."""
    first: dict[AudioSettings, Mapping[str, Any]] = {}
    for out, (_, audio) in zip(outputs, _encodings(outputs), strict=True):
        first.setdefault(audio, out)
    return list(first.values())
