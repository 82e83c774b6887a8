"""The job spec: typed sources and sinks, parsed once from untrusted JSON.

``parse`` turns untrusted JSON into a frozen ``JobSpec`` or raises ``SpecError`` naming the
field, so the master can refuse a bad job with a precise message and the agent can build
FFmpeg's argv from the types without checking or parsing anything again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ffrtmp.contract import DEFAULT_PRIORITY, DEFAULT_QUEUE, Priority, Queue
from ffrtmp.jobspec import numbers
from ffrtmp.jobspec.encoding import encoding
from ffrtmp.jobspec.limits import Limits, parse_limits
from ffrtmp.jobspec.paths import Containment, normalise_roots
from ffrtmp.jobspec.presets import OVERRIDES, PRESETS
from ffrtmp.jobspec.sinks import Sink, parse_sink
from ffrtmp.jobspec.sources import (
    INPUT_FETCH,
    STAGE,
    STREAM,
    FileSource,
    GeneratedSource,
    RemoteFile,
    Source,
    UrlSource,
    generated_source,
    parse_source,
)
from ffrtmp.jobspec.split_rules import check_split, parse_split
from ffrtmp.jobspec.steps import (
    AudioStep,
    PartStep,
    PlanStep,
    SegmentStep,
    StitchStep,
    SweepStep,
    audio_name,
    distinct_audio,
    needed,
    parse_step,
    segment_name,
)
from ffrtmp.validation import (
    CAPABILITY,
    FieldError,
    known_fields,
    name_list,
    one_of,
    string_keys,
    text,
)

MAX_URL_CHARS = 2048
MAX_INTENT_CHARS = 200
MAX_REQUIRES = 32
MAX_OUTPUTS = 16

TOP_FIELDS = ("input", "input_fetch", "outputs", "queue", "priority", "requires", "limits",
              "duration_s", "intent", "split")
STEP_FIELD = "step"  # only in the child specs the master writes for a split job
SUBMITTED_STEP = "is set by the master for the parts of a split job"
OUTPUT_FIELDS = ("url", "preset", *OVERRIDES)

_url = text(MAX_URL_CHARS, strict=True)
_intent = text(MAX_INTENT_CHARS, strict=True)
_queue = one_of(*Queue)
_priority = one_of(*Priority)
_fetch = one_of(*INPUT_FETCH)
_preset = one_of(*PRESETS)
_requires = name_list(CAPABILITY, MAX_REQUIRES, what="capability names",
                      too_many=f"must list at most {MAX_REQUIRES} capabilities")


class SpecError(FieldError):
    """A job spec is invalid; ``field`` is its path (``outputs[1].preset``)."""


@dataclass(frozen=True)
class JobSpec:
    """A validated job; build one with ``parse`` so every invariant holds."""

    source: Source
    outputs: tuple[Sink, ...]
    queue: str = DEFAULT_QUEUE.value
    priority: str = DEFAULT_PRIORITY.value
    requires: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    duration_s: float | None = None
    intent: str | None = None
    split_s: float | None = None  # a split job's target segment length; None: not split
    step: PartStep | None = None  # which part of a split job this child spec is

    @property
    def input(self) -> str:
        """The input as the spec gave it."""
        return self.source.url

    @property
    def input_kind(self) -> str:
        return self.source.kind

    @property
    def input_fetch(self) -> str | None:
        """Who reads a remote file input: the agent first (stage) or FFmpeg (stream)."""
        if isinstance(self.source, UrlSource) and self.source.scheme in ("http", "https", "store"):
            return STREAM
        return STAGE if self.source.kind == "remote" else None

    @property
    def uploads(self) -> bool:
        """Whether any output is delivered over HTTP after the encode."""
        return any(out.upload for out in self.outputs)

    @property
    def is_live(self) -> bool:
        """Live jobs run until the stream ends or a human cancels them."""
        return self.source.is_live or self.pushes

    @property
    def pushes(self) -> bool:
        """Whether any output is a live push (which must be fed in real time)."""
        return any(out.pushes for out in self.outputs)

    def capabilities(self) -> tuple[str, ...]:
        """Everything a node must have reported to run this job, for the master's matching."""
        kind = None if self.step is None else self.step.kind
        return needed(self.requires, ((out.video, out.audio) for out in self.outputs), kind)

    def expected_duration_s(self) -> float | None:
        """The output length when it is knowable without probing, for progress percentages."""
        if isinstance(self.step, SegmentStep | AudioStep | StitchStep):
            return self.step.duration_s
        if isinstance(self.step, SweepStep):
            return None
        known = [d for d in (self.source.known_duration_s, self.duration_s) if d is not None]
        return min(known) if known else None

    def reads(self) -> tuple[Source, ...]:
        """What the workload reads, so the agent stages every RemoteFile in it.

        A stitch reads the intermediates (every rung of every segment, then the audio tracks),
        not the source; a sweep reads nothing.
        """
        if isinstance(self.step, SweepStep):
            return ()
        if not isinstance(self.step, StitchStep):
            return (self.source,)
        names = [segment_name(index, rung) for index in range(self.step.segments)
                 for rung in range(len(self.outputs))]
        names += [audio_name(track) for track in range(self.step.audio)]
        return tuple(_intermediate(self.step.workspace, name) for name in names)

    def to_dict(self) -> dict[str, object]:
        """The canonical JSON form: every field present, overrides only where they differ."""
        fetch = {"input_fetch": STREAM} if self.input_fetch == STREAM else {}
        return {
            "input": self.input,
            **fetch,
            "outputs": [_output_to_dict(out) for out in self.outputs],
            "queue": self.queue,
            "priority": self.priority,
            "requires": list(self.requires),
            "limits": {"cpu_max": self.limits.cpu_max, "memory_max": self.limits.memory_max},
            "duration_s": self.duration_s,
            "intent": self.intent,
            **({} if self.split_s is None else {"split": {"segment_s": self.split_s}}),
            **({} if self.step is None else {STEP_FIELD: self.step.to_dict()}),
        }


def _intermediate(place: str, name: str) -> Source:
    """A file in a validated workspace, as ``parse_source`` would type it."""
    url = f"{place}/{name}"
    if place.startswith("store:"):
        return RemoteFile(url=url, name=name)
    return FileSource(url=url, path=url)


def _output_to_dict(out: Sink) -> dict[str, object]:
    doc: dict[str, object] = {"url": out.url, "preset": out.preset}
    preset, settings = PRESETS[out.preset], out.settings
    for key in OVERRIDES:
        if key in settings and settings[key] != preset.get(key):
            doc[key] = settings[key]
    return doc


@contextmanager
def _as_spec_error() -> Iterator[None]:
    try:
        yield
    except SpecError:
        raise
    except FieldError as exc:
        raise SpecError(exc.field, exc.message) from None


def testsrc_params(url: str) -> GeneratedSource:
    """Parse ``testsrc://?duration=&size=&rate=&realtime=``; raises SpecError naming ``input``."""
    with _as_spec_error():
        return generated_source(url)


def parse(obj: object, media_roots: Sequence[str], *, check_filesystem: bool = True,
          submitted: bool = False) -> JobSpec:
    """Validate untrusted JSON into a JobSpec, or raise SpecError naming the first bad field.

    ``media_roots`` are absolute directories that every local input and output must stay
    inside. With ``check_filesystem`` the path is also resolved through symlinks, for roots
    that exist on this host; elsewhere only the lexical check applies. A ``submitted`` spec
    (from an operator) may not carry a ``step``: only the master writes those.
    """
    containment = Containment(normalise_roots(media_roots), check_filesystem)
    with _as_spec_error():
        spec = _parse(obj, containment, submitted)
        if spec.split_s is not None:
            check_split(spec.source, spec.outputs, spec.duration_s)
        if isinstance(spec.step, StitchStep):
            _check_tracks(spec.step, spec.outputs)
        return spec


def _check_tracks(step: StitchStep, outputs: Sequence[Sink]) -> None:
    """A stitch muxes one audio track per distinct audio encoding, or none at all."""
    tracks = len(distinct_audio(out.audio for out in outputs))
    if step.audio not in (0, tracks):
        raise FieldError("step.audio", f"must be 0 (no audio) or {tracks}, the number of distinct "
                                       "audio encodings among the outputs")


def _parse(obj: object, containment: Containment, submitted: bool) -> JobSpec:
    spec = string_keys(obj, "spec")
    known_fields(spec, (*TOP_FIELDS, STEP_FIELD), "")
    for name in ("input", "outputs"):
        if name not in spec:
            raise FieldError(name, "is required")
    step = _step(spec, containment, submitted)
    fetch = _fetch(spec.get("input_fetch", STAGE), "input_fetch")
    source = parse_source(_url(spec["input"], "input"), containment, fetch)
    return JobSpec(
        source=source,
        outputs=_outputs(spec["outputs"], containment, source,
                         empty=isinstance(step, PlanStep | SweepStep)),
        queue=_queue(spec.get("queue", DEFAULT_QUEUE.value), "queue"),
        priority=_priority(spec.get("priority", DEFAULT_PRIORITY.value), "priority"),
        requires=tuple(sorted(set(_requires(spec.get("requires", []), "requires")))),
        limits=parse_limits(spec.get("limits")),
        duration_s=numbers.optional_duration(spec.get("duration_s"), "duration_s"),
        intent=None if spec.get("intent") is None else _intent(spec["intent"], "intent"),
        split_s=parse_split(spec.get("split")),
        step=step,
    )


def _step(spec: Mapping[str, Any], containment: Containment, submitted: bool) -> PartStep | None:
    if STEP_FIELD not in spec:
        return None
    if submitted:
        raise FieldError(STEP_FIELD, SUBMITTED_STEP)
    if parse_split(spec.get("split")) is not None:
        raise FieldError("split", "cannot be combined with step: a part of a split job is not "
                                  "split again")
    return parse_step(spec[STEP_FIELD], containment)


def _outputs(value: Any, containment: Containment, source: Source, *,
             empty: bool = False) -> tuple[Sink, ...]:
    """The outputs; ``empty`` for the parts that write nothing (a plan, a sweep)."""
    if not isinstance(value, list):
        raise FieldError("outputs", "must be a list of outputs")
    if empty:
        if value:
            raise FieldError("outputs", "must be empty for a plan or sweep step")
        return ()
    if not value:
        raise FieldError("outputs", "must contain at least one output")
    if len(value) > MAX_OUTPUTS:
        raise FieldError("outputs", f"must contain at most {MAX_OUTPUTS} outputs")
    targets: dict[str, int] = {}
    outputs = []
    for index, item in enumerate(value):
        out = _output(item, f"outputs[{index}]", containment, index)
        target = out.upload or out.path or out.url
        if target in targets:
            raise FieldError(f"outputs[{index}].url", f"duplicates outputs[{targets[target]}].url")
        if target == source.local_path:
            raise FieldError(f"outputs[{index}].url", "is the input file; it would be overwritten")
        targets[target] = index
        outputs.append(out)
    return tuple(outputs)


def _output(value: Any, where: str, containment: Containment, index: int) -> Sink:
    doc: Mapping[str, Any] = string_keys(value, where)
    known_fields(doc, OUTPUT_FIELDS, f"{where}.")
    if "url" not in doc:
        raise FieldError(f"{where}.url", "is required")
    if "preset" not in doc:
        raise FieldError(f"{where}.preset", f"is required; one of {', '.join(PRESETS)}")
    make = parse_sink(_url(doc["url"], f"{where}.url"), f"{where}.url", containment, index)
    preset = _preset(doc["preset"], f"{where}.preset")
    return make(preset, *encoding(preset, doc, where))

