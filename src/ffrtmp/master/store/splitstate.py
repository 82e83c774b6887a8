"""What a split job is, given its children: pure rules, no SQL (``split.py`` applies them).

A split job is never dispatched; its state, progress and the next child it needs follow
from its children alone, so deriving them again after any change, in any order, gives the
same answer. Nothing here re-runs work: a failed or lost child stays so until an operator
retries the parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ffrtmp.contract import AT_REST, BUSY, JobState, Step

# Shares of the whole, in percent: probing, encoding the video (by segment duration), the
# audio, and joining. A split job shows 100 only once it has succeeded.
WEIGHTS = {Step.PLAN: 2.0, Step.SEGMENT: 85.0, Step.AUDIO: 3.0, Step.STITCH: 10.0}
SHOWN_BEFORE_DONE = 99.9
# The children that leave intermediates in the workspace when they succeed.
WRITERS = frozenset({Step.SEGMENT, Step.AUDIO, Step.STITCH})


@dataclass(frozen=True)
class Part:
    """One child as the rules see it."""

    id: str
    step: Step
    state: JobState
    percent: float = 0.0  # its own progress, as its node last reported it
    weight: float = 1.0  # a segment's duration, so long cuts count for more
    label: str = ""  # how a reason names it: "plan", "segment 3", "audio", …

    @property
    def done(self) -> bool:
        return self.state == JobState.SUCCEEDED


@dataclass(frozen=True)
class Verdict:
    """The state a split job derives, and the child that decided it (named in the reason)."""

    state: JobState
    why: str  # what the child did: "failed", "lost", … or a summary when no child decided
    cause: Part | None = None


def part_percent(state: str, progress: Any) -> float:
    """A child's own share done: 100 once succeeded, else what its node last reported."""
    if state == JobState.SUCCEEDED:
        return 100.0
    if isinstance(progress, dict) and isinstance(progress.get("percent"), int | float):
        return min(100.0, max(0.0, float(progress["percent"])))
    return 0.0


def _of(parts: Sequence[Part], step: Step) -> list[Part]:
    return [p for p in parts if p.step == step]


def next_step(parts: Sequence[Part], cancel_requested: bool) -> Step | None:
    """The child the split job needs next, if any: its parts, its stitch, or (after a cancel
    that found intermediates) its sweep. Each is made once; a retry re-runs, never re-makes."""
    if any(p.done for p in _of(parts, Step.STITCH)):
        return None
    if cancel_requested:
        settled = all(p.state in AT_REST for p in parts)
        wrote = any(p.done for p in parts if p.step in WRITERS)
        return Step.SWEEP if settled and wrote and not _of(parts, Step.SWEEP) else None
    encodes = _of(parts, Step.SEGMENT) + _of(parts, Step.AUDIO)
    if not encodes:
        return Step.SEGMENT if any(p.done for p in _of(parts, Step.PLAN)) else None
    if all(p.done for p in encodes) and not _of(parts, Step.STITCH):
        return Step.STITCH
    return None


def verdict(parts: Sequence[Part], state: JobState, cancel_requested: bool) -> Verdict:
    """The split job's state: a succeeded stitch wins; then a cancel, once everything is at
    rest (the sweep ended too); then the first failed child, the first lost one; then running
    while any child holds a node, else queued."""
    if any(p.done for p in _of(parts, Step.STITCH)):
        return Verdict(JobState.SUCCEEDED, "succeeded", _of(parts, Step.STITCH)[0])
    if cancel_requested:
        if all(p.state in AT_REST for p in parts) and next_step(parts, True) is None:
            return Verdict(JobState.CANCELED, "canceled by operator")
        return Verdict(state, "cancel under way")
    for bad in (JobState.FAILED, JobState.CANCELED, JobState.LOST):
        culprit = next((p for p in parts if p.state == bad), None)
        if culprit is not None:
            return Verdict(JobState.LOST if bad == JobState.LOST else JobState.FAILED,
                           bad.value, culprit)
    busy = sum(1 for p in parts if p.state in BUSY)
    if busy or any(p.done for p in parts):
        return Verdict(JobState.RUNNING, f"{busy} of {len(parts)} part(s) running")
    return Verdict(JobState.QUEUED, f"{len(parts) - sum(p.done for p in parts)} part(s) queued")


def progress(parts: Sequence[Part], state: JobState) -> dict[str, Any]:
    """``{percent, stage, segments, segments_done}`` for operators watching the whole."""
    segments = _of(parts, Step.SEGMENT)
    shares = {Step.PLAN: _share(_of(parts, Step.PLAN)), Step.SEGMENT: _share(segments),
              Step.AUDIO: _share(_of(parts, Step.AUDIO)), Step.STITCH: _share(_of(parts, Step.STITCH))}
    if segments and not _of(parts, Step.AUDIO):
        shares[Step.AUDIO] = 1.0  # the source has no audio: nothing to wait for
    percent = sum(WEIGHTS[step] * share for step, share in shares.items())
    percent = 100.0 if state == JobState.SUCCEEDED else min(percent, SHOWN_BEFORE_DONE)
    stage = next((name for step, name in ((Step.SWEEP, "sweep"), (Step.STITCH, "stitch"),
                                          (Step.SEGMENT, "encode")) if _of(parts, step)), "plan")
    return {"percent": round(percent, 1), "stage": stage, "segments": len(segments),
            "segments_done": sum(p.done for p in segments)}


def _share(parts: Sequence[Part]) -> float:
    """The done fraction of ``parts``, each counted by its weight (0 when there are none)."""
    total = sum(p.weight for p in parts)
    return sum(p.weight * p.percent for p in parts) / total / 100.0 if total > 0 else 0.0
