"""Property tests: whatever JSON arrives, parse returns a sound JobSpec or raises SpecError."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffrtmp import jobspec
from ffrtmp.agent.argv import build_argv
from ffrtmp.agent.localize import localize
from ffrtmp.contract import Priority, Queue
from ffrtmp.jobspec import JobSpec, SpecError, local_path, parse
from ffrtmp.layout import WorkDir

QUEUES, PRIORITIES = tuple(Queue), tuple(Priority)

ROOTS = ("/srv/media", "/data/ingest")  # absent on the test host: the lexical check applies
FIELDS = ("input", "outputs", "queue", "priority", "requires", "limits", "duration_s", "intent",
          "url", "preset", *jobspec.OVERRIDES, "cpu_max", "memory_max")

# Strings close to the valid ones reach deeper into the validators than random text does.
NEAR_MISSES = (
    "/srv/media/a.mp4", "/srv/media/a.m3u8", "file:///srv/media/x/y.mkv", "/srv/media/../etc",
    "/srv/media", "/srv/mediax/a.mp4", "file://srv/media/a.mp4", "/data/ingest/in.mov",
    "rtmp://h/app/s", "rtmp://h", "rtmps://h:1935/a/b", "srt://h:9000", "http://h/a.mp4",
    "https://[::1]:8443/x", "http://h:70000/", "testsrc://", "testsrc://?duration=1",
    "testsrc://?duration=0&rate=300", "testsrc://?size=2x2", "testsrc://?x=1", "ftp://h/a",
    "copy", "h264-720p", "h265-1080p", "live", "batch", "high", "low", "libx264", "aac",
    "900k", "4M", "1.5M", "128000", "0k", "1280x720", "1281x720", "30", "29.97", "0", "241",
    "ultrafast", "max", "max 100000", "50000 100000", "512M", "2G", "1M", "\x00", "\ud800",
    "a" * 2049,
)
leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
          | st.sampled_from(NEAR_MISSES))
keys = st.sampled_from(FIELDS) | st.text(max_size=8)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=16,
)

# --- valid specs, built from valid parts ---------------------------------------------------

names = st.text("abcXYZ019_-", min_size=1, max_size=8)


@st.composite
def local_paths(draw: st.DrawFn, extensions: tuple[str, ...]) -> str:
    root = draw(st.sampled_from(ROOTS))
    parts = draw(st.lists(names, min_size=0, max_size=3))
    path = "/".join([root, *parts, draw(names) + draw(st.sampled_from(extensions))])
    return draw(st.sampled_from(["", "file://"])) + path


inputs = (local_paths((".mov", ".mp4", "")) | st.sampled_from([
    "http://cdn.example.com/a.mp4", "rtmp://in.example.com/live/k", "srt://10.0.0.1:9000",
    "testsrc://", "testsrc://?duration=3&size=640x360&rate=25"]))
override_values = {
    "video_codec": st.sampled_from(["libx264", "libx265", "h264_nvenc", "copy"]),
    "audio_codec": st.sampled_from(["aac", "libopus", "copy"]),
    "video_bitrate": st.sampled_from(["900k", "4M", 128000, "2.5M"]),
    "audio_bitrate": st.sampled_from(["96k", "128k", 64000]),
    "size": st.sampled_from(["1280x720", "640x360", "16x16", "8192x4320"]),
    "fps": st.sampled_from([25, "30", 29.97, 240, 1]),
    "encoder_preset": st.sampled_from(jobspec.ENCODER_PRESETS),
}


@st.composite
def outputs(draw: st.DrawFn) -> dict[str, Any]:
    url = draw(local_paths((".mp4", ".mkv", ".m3u8")) | st.builds(
        lambda n: f"rtmp://live.example.com/app/{n}", names))
    preset = draw(st.sampled_from(list(jobspec.PRESETS)))
    chosen = draw(st.lists(st.sampled_from(jobspec.OVERRIDES), unique=True, max_size=4))
    doc = {"url": url, "preset": preset}
    for key in chosen:
        doc[key] = draw(override_values[key])
    return doc


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"input": draw(inputs),
                           "outputs": draw(st.lists(outputs(), min_size=1, max_size=4))}
    optional = {
        "queue": st.sampled_from(QUEUES),
        "priority": st.sampled_from(PRIORITIES),
        "requires": st.lists(st.sampled_from(["h264_nvenc", "cuda", "vaapi"]), max_size=3),
        "limits": st.none() | st.fixed_dictionaries({}, optional={
            "cpu_max": st.sampled_from(["max", "50000 100000", None]),
            "memory_max": st.sampled_from(["512M", 1 << 30, "max", None])}),
        "duration_s": st.none() | st.floats(min_value=0.001, max_value=86400),
        "intent": st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=0x7e),
                                      min_size=1, max_size=200),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    return doc


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    """A valid-looking spec with a few fields replaced, removed or added."""
    doc = draw(specs())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        targets = [doc, *doc["outputs"]] if isinstance(doc.get("outputs"), list) else [doc]
        if isinstance(doc.get("limits"), dict):
            targets.append(doc["limits"])
        target = draw(st.sampled_from(targets))
        if not isinstance(target, dict):
            continue
        key = draw(keys)
        if target and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(target)))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return doc


# --- the invariants ------------------------------------------------------------------------------


def _inside_roots(path: str) -> bool:
    return any(path != root and os.path.commonpath([path, root]) == root for root in ROOTS)


def check_accepted(spec: JobSpec) -> None:
    assert 1 <= len(spec.outputs) <= jobspec.MAX_OUTPUTS
    assert spec.queue in QUEUES
    assert spec.priority in PRIORITIES
    assert spec.input_kind in ("file", "url", "remote", "testsrc")
    if spec.input_kind == "file":
        assert _inside_roots(local_path(spec.input))
    targets = set()
    for out in spec.outputs:
        assert out.kind in ("file", "hls", "rtmp")
        assert out.preset in jobspec.PRESETS
        assert set(out.settings) <= set(jobspec.OVERRIDES)
        if out.path is not None:
            assert _inside_roots(out.path)
            assert ".." not in out.path.split("/")
        targets.add(out.path or out.url)
    assert len(targets) == len(spec.outputs)
    assert list(spec.capabilities()) == sorted(set(spec.capabilities()))
    duration = spec.expected_duration_s()
    assert duration is None or 0 < duration <= jobspec.MAX_DURATION_S
    canonical = spec.to_dict()
    assert parse(json.loads(json.dumps(canonical)), ROOTS) == spec
    # as the agent runs it: remote media placed in the attempt's scratch dir first
    placed = localize(spec, WorkDir(Path("/w")).job("j", 1))
    argv = build_argv(placed, progress_path="/var/lib/ffrtmp/worker/jobs/j/progress")
    assert all(isinstance(arg, str) and "\x00" not in arg for arg in argv)


def parse_or_refuse(obj: Any) -> None:
    try:
        spec = parse(obj, ROOTS)
    except SpecError as exc:
        assert exc.field
        assert exc.message
        return
    check_accepted(spec)


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(json_values)
def test_arbitrary_json_is_accepted_soundly_or_refused(obj: Any) -> None:
    parse_or_refuse(obj)


@PROPERTY_SETTINGS
@given(st.dictionaries(keys, json_values, max_size=6))
def test_arbitrary_objects_are_accepted_soundly_or_refused(obj: dict[str, Any]) -> None:
    parse_or_refuse(obj)


@PROPERTY_SETTINGS
@given(mutated_specs())
def test_mutated_specs_are_accepted_soundly_or_refused(obj: Any) -> None:
    parse_or_refuse(obj)


@PROPERTY_SETTINGS
@given(specs())
def test_specs_built_from_valid_parts(obj: dict[str, Any]) -> None:
    """Valid parts can still combine badly (a copy with a bitrate, a repeated file)."""
    try:
        spec = parse(obj, ROOTS)
    except SpecError as exc:
        assert exc.field.startswith("outputs[")
        assert ("stream copy" in exc.message or "duplicates" in exc.message
                or "is the input file" in exc.message)
        return
    check_accepted(spec)
