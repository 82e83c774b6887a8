"""Split jobs in the job spec: the split field and its refusals, the typed steps of the child
specs, what each part reads, and the child builders (each child parses back to what it says)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ffrtmp import jobspec
from ffrtmp.contract import Step
from ffrtmp.jobspec import (
    AudioStep,
    FileSource,
    JobSpec,
    Plan,
    PlanStep,
    RemoteFile,
    SegmentStep,
    SpecError,
    StitchStep,
    SweepStep,
    parse,
)
from ffrtmp.validation import FieldError

ROOTS = ["/srv/media"]
PARENT = "j-0123456789ab"
STORE_WS = f"store:///out/film/.ffrtmp-split-{PARENT}"
ROOT_WS = f"/srv/media/out/.ffrtmp-split-{PARENT}"


def out(url: str, preset: str = "h264-720p", **overrides: Any) -> dict[str, Any]:
    return {"url": url, "preset": preset, **overrides}


def split_doc(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"input": "store:///in/film.mov",
                           "outputs": [out("store:///out/film/index.m3u8"),
                                       out("store:///out/film/lo.mp4", "h264-480p")],
                           "split": {"segment_s": 60}}
    doc.update(top)
    return doc


def refused(doc: Any, field: str, words: str = "", **kwargs: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(doc, ROOTS, check_filesystem=False, **kwargs)
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value.message
    return info.value


def roundtrip(doc: dict[str, Any]) -> JobSpec:
    spec = parse(doc, ROOTS, check_filesystem=False)
    assert parse(spec.to_dict(), ROOTS, check_filesystem=False) == spec
    return spec


# --- the split field ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ({"segment_s": 60}, 60.0), ({"segment_s": 1}, 1.0), ({"segment_s": 12.5}, 12.5),
    ({"segment_s": 86400}, 86400.0), ({"segment_s": 0}, None), (None, None)])
def test_split_is_a_segment_length_or_nothing(value: Any, expected: float | None) -> None:
    spec = roundtrip(split_doc(split=value))
    assert spec.split_s == expected
    canonical = spec.to_dict()
    if expected is None:
        assert "split" not in canonical
    else:
        assert canonical["split"] == {"segment_s": expected}
        assert isinstance(canonical["split"]["segment_s"], float)  # type: ignore[index]


def test_an_ordinary_spec_has_no_split_or_step() -> None:
    doc = split_doc()
    del doc["split"]
    spec = roundtrip(doc)
    assert (spec.split_s, spec.step) == (None, None)
    assert "split" not in spec.to_dict() and "step" not in spec.to_dict()


@pytest.mark.parametrize(("value", "field", "words"), [
    (60, "split", "JSON object"),
    ({}, "split.segment_s", "is required"),
    ({"segment_s": 60, "rung": 1}, "split.rung", "not a known field"),
    ({"segment_s": "60"}, "split.segment_s", "number"),
    ({"segment_s": True}, "split.segment_s", "number"),
    ({"segment_s": False}, "split.segment_s", "number"),
    ({"segment_s": 0.5}, "split.segment_s", "between 1 and 86400"),
    ({"segment_s": -5}, "split.segment_s", "between 1 and 86400"),
    ({"segment_s": 86401}, "split.segment_s", "between 1 and 86400"),
    ({"segment_s": float("nan")}, "split.segment_s", "finite"),
])
def test_a_bad_split_is_refused(value: Any, field: str, words: str) -> None:
    refused(split_doc(split=value), field, words)


@pytest.mark.parametrize("source", [
    "/srv/media/in/film.mov", "file:///srv/media/in/film.mkv", "store:///in/film.mov",
    "https://cdn.example.com/film.mp4"])
def test_split_takes_every_file_input(source: str) -> None:
    spec = roundtrip(split_doc(input=source))
    assert isinstance(spec.source, FileSource | RemoteFile)


@pytest.mark.parametrize("outputs", [
    [out("/srv/media/out/a.mp4")], [out("/srv/media/out/a.mkv")],
    [out("/srv/media/out/hls/index.m3u8"), out("store:///out/b.mp4", "h264-360p")],
    [out("https://dav.example.com/out/a.mp4")],  # the workspace then goes beside the input
])
def test_split_takes_file_and_store_outputs(outputs: list[dict[str, Any]]) -> None:
    assert roundtrip(split_doc(outputs=outputs)).split_s == 60.0


NOT_A_FILE = "needs a file input"


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"input": "testsrc://?duration=600"}, "split", NOT_A_FILE),
    ({"input": "rtmp://in.example.com/live/cam"}, "split", NOT_A_FILE),
    ({"input": "srt://10.0.0.5:9000"}, "split", NOT_A_FILE),
    ({"input": "https://cdn.example.com/a.mp4", "input_fetch": "stream"}, "split", NOT_A_FILE),
    ({"input": "https://cdn.example.com/live/index.m3u8"}, "split", NOT_A_FILE),
    ({"outputs": [out("/srv/media/a.mp4"), out("rtmp://live.example.com/app/s")]},
     "outputs[1].url", "is an RTMP push; a split job writes files"),
    ({"outputs": [out("/srv/media/a.mp4", "copy")]}, "outputs[0].video_codec", "stream copy"),
    ({"outputs": [out("/srv/media/a.mp4", video_codec="copy")]}, "outputs[0].video_codec",
     "re-encodes every segment, so it cannot copy"),
    ({"outputs": [out("/srv/media/a.mp4", audio_codec="copy")]}, "outputs[0].audio_codec",
     "stream copy"),
    ({"outputs": [out("/srv/media/a.mp4", fps=15)]}, "outputs[0].fps",
     "segments keep the source's frame rate"),
    ({"duration_s": 30}, "duration_s", "cannot be combined with split"),
    ({"input": "https://cdn.example.com/a.mp4",
      "outputs": [out("https://dav.example.com/a.mp4"), out("http://dav.example.com/b.mp4")]},
     "split", "needs a store:/// or media-root output or input to hold its intermediate"),
])
def test_what_cannot_be_split_is_refused_saying_why(changes: dict[str, Any], field: str,
                                                    words: str) -> None:
    refused(split_doc(**changes), field, words)


def test_the_refusal_messages_are_the_designed_ones() -> None:
    error = refused(split_doc(input="testsrc://"), "split")
    assert error.message == ("needs a file input (a media-root file, store:/// or http(s):// "
                             "file); live streams, streamed URLs and test patterns cannot be "
                             "split")


# --- steps --------------------------------------------------------------------------------------

STEPS: dict[str, dict[str, Any]] = {
    "plan": {"kind": "plan", "parent": PARENT, "workspace": STORE_WS, "segment_s": 60.0},
    "segment": {"kind": "segment", "parent": PARENT, "workspace": STORE_WS, "index": 3,
                "start_s": "36.000000", "frames": 300, "duration_s": 12.0},
    "audio": {"kind": "audio", "parent": PARENT, "workspace": STORE_WS, "duration_s": 120.0},
    "stitch": {"kind": "stitch", "parent": PARENT, "workspace": STORE_WS,
               "frames": [300, 300, 250], "durations": [12.0, 12.0, 10.0], "audio": 2,
               "duration_s": 34.0},
    "sweep": {"kind": "sweep", "parent": PARENT, "workspace": STORE_WS},
}


def child(which: str, /, **step: Any) -> dict[str, Any]:
    doc = split_doc()
    del doc["split"]
    if which in ("plan", "sweep"):
        doc["outputs"] = []
    doc["step"] = {**STEPS[which], **step}
    return doc


@pytest.mark.parametrize(("kind", "typed"), [
    ("plan", PlanStep(PARENT, STORE_WS, 60.0)),
    ("segment", SegmentStep(PARENT, STORE_WS, 3, "36.000000", 300, 12.0)),
    ("audio", AudioStep(PARENT, STORE_WS, 120.0)),
    ("stitch", StitchStep(PARENT, STORE_WS, (300, 300, 250), (12.0, 12.0, 10.0), 2, 34.0)),
    ("sweep", SweepStep(PARENT, STORE_WS)),
])
def test_each_step_parses_into_its_type_and_back(kind: str, typed: Any) -> None:
    spec = roundtrip(child(kind))
    assert spec.step == typed
    assert spec.step is not None and spec.step.kind == Step(kind)
    assert spec.to_dict()["step"] == STEPS[kind]


def test_a_start_stays_the_exact_text_it_was() -> None:
    spec = roundtrip(child("segment", start_s="7.007000000"))
    assert isinstance(spec.step, SegmentStep)
    assert spec.step.start_s == "7.007000000"


def test_a_media_root_workspace_is_normalised_and_kept_inside_the_roots() -> None:
    spec = roundtrip(child("sweep", workspace=f"/srv/media//out/./.ffrtmp-split-{PARENT}"))
    assert spec.step is not None and spec.step.workspace == ROOT_WS


def test_a_submitted_spec_cannot_carry_a_step() -> None:
    refused(child("segment"), "step", "is set by the master for the parts of a split job",
            submitted=True)
    assert parse(split_doc(), ROOTS, check_filesystem=False, submitted=True).split_s == 60.0


@pytest.mark.parametrize(("kind", "step", "field", "words"), [
    ("segment", {"kind": "split"}, "step.kind", "one of plan, segment, audio, stitch, sweep"),
    ("segment", {"kind": None}, "step.kind", "one of"),
    ("sweep", {"index": 1}, "step.index", "not a known field"),
    ("segment", {"parent": "n-0123"}, "step.parent", "job id"),
    ("segment", {"parent": "j-../x"}, "step.parent", "job id"),
    ("segment", {"workspace": "store:///out/film"}, "step.workspace", ".ffrtmp-split-j-"),
    ("segment", {"workspace": "store:///out/.ffrtmp-split-j-other"}, "step.workspace",
     f".ffrtmp-split-{PARENT}"),
    ("segment", {"workspace": f"store:///out/../.ffrtmp-split-{PARENT}"}, "step.workspace", ".."),
    ("segment", {"workspace": f"store://host/.ffrtmp-split-{PARENT}"}, "step.workspace",
     "store:///"),
    ("segment", {"workspace": f"/etc/.ffrtmp-split-{PARENT}"}, "step.workspace",
     "escapes the media roots"),
    ("segment", {"workspace": f"https://dav.example.com/.ffrtmp-split-{PARENT}"},
     "step.workspace", "absolute path"),
    ("segment", {"workspace": 7}, "step.workspace", "string"),
    ("segment", {"start_s": 36.0}, "step.start_s", "decimal seconds as text"),
    ("segment", {"start_s": "1e3"}, "step.start_s", "decimal seconds as text"),
    ("segment", {"start_s": "-1"}, "step.start_s", "decimal seconds as text"),
    ("segment", {"start_s": "1.0000000001"}, "step.start_s", "decimal seconds as text"),
    ("segment", {"start_s": "1."}, "step.start_s", "decimal seconds as text"),
    ("segment", {"start_s": "999999"}, "step.start_s", "at most 86400"),
    ("segment", {"frames": 0}, "step.frames", "between 1 and"),
    ("segment", {"frames": 2.0}, "step.frames", "integer"),
    ("segment", {"index": 1000}, "step.index", "between 0 and 999"),
    ("segment", {"duration_s": 0}, "step.duration_s", "between"),
    ("plan", {"segment_s": 0}, "step.segment_s", "between 1 and"),
    ("stitch", {"frames": []}, "step.frames", "one item per segment"),
    ("stitch", {"frames": [1] * 1001, "durations": [1.0] * 1001}, "step.frames", "at most 1000"),
    ("stitch", {"frames": [300, 0, 1]}, "step.frames[1]", "between 1 and"),
    ("stitch", {"durations": [12.0]}, "step.durations", "one duration per segment"),
    ("stitch", {"audio": 17}, "step.audio", "between 0 and 16"),
    ("stitch", {"audio": 1}, "step.audio", "0 (no audio) or 2"),
    ("stitch", {"audio": 3}, "step.audio", "0 (no audio) or 2"),
])
def test_a_bad_step_is_refused(kind: str, step: dict[str, Any], field: str, words: str) -> None:
    refused(child(kind, **step), field, words)


@pytest.mark.parametrize("kind", list(STEPS))
def test_every_field_of_a_step_is_required(kind: str) -> None:
    for name in STEPS[kind]:
        if name == "kind":
            continue
        doc = child(kind)
        del doc["step"][name]
        refused(doc, f"step.{name}", "is required")


def test_only_a_plan_or_a_sweep_has_no_outputs() -> None:
    for kind in ("segment", "audio", "stitch"):
        doc = child(kind)
        doc["outputs"] = []
        refused(doc, "outputs", "at least one output")
    for kind in ("plan", "sweep"):
        doc = child(kind)
        doc["outputs"] = [out("store:///x/a.mp4")]
        refused(doc, "outputs", "must be empty for a plan or sweep step")
    doc = split_doc(outputs=[])
    refused(doc, "outputs", "at least one output")


def test_a_part_is_not_split_again() -> None:
    doc = child("segment")
    doc["split"] = {"segment_s": 60}
    refused(doc, "split", "cannot be combined with step")
    doc["split"] = {"segment_s": 0}
    assert roundtrip(doc).split_s is None


# --- what a part reads, needs and lasts ----------------------------------------------------------


def test_an_ordinary_job_and_most_parts_read_the_source() -> None:
    ordinary = roundtrip({k: v for k, v in split_doc().items() if k != "split"})
    assert ordinary.reads() == (RemoteFile("store:///in/film.mov", "film.mov"),)
    for kind in ("plan", "segment", "audio"):
        assert roundtrip(child(kind)).reads() == ordinary.reads()
    assert roundtrip(child("sweep")).reads() == ()


def test_a_stitch_reads_every_rung_of_every_segment_then_the_audio() -> None:
    spec = roundtrip(child("stitch"))
    names = [s.name for s in spec.reads() if isinstance(s, RemoteFile)]
    assert names == ["seg-00000.r0.mp4", "seg-00000.r1.mp4", "seg-00001.r0.mp4",
                     "seg-00001.r1.mp4", "seg-00002.r0.mp4", "seg-00002.r1.mp4",
                     "audio.a0.mp4", "audio.a1.mp4"]
    assert all(s.url == f"{STORE_WS}/{s.name}" for s in spec.reads() if isinstance(s, RemoteFile))


def test_a_stitch_in_a_media_root_reads_files_there() -> None:
    spec = roundtrip(child("stitch", workspace=ROOT_WS, audio=0))
    assert spec.reads()[0] == FileSource(f"{ROOT_WS}/seg-00000.r0.mp4",
                                         f"{ROOT_WS}/seg-00000.r0.mp4")
    assert len(spec.reads()) == 6  # three segments, two rungs, no audio
    for source in spec.reads():  # the same types parse_source gives for those paths
        assert parse({"input": source.url, "outputs": [out("/srv/media/z.mp4")]},
                     ROOTS, check_filesystem=False).source == source


def test_a_part_needs_only_the_codecs_it_encodes() -> None:
    doc = split_doc(requires=["gpu"], outputs=[
        out("store:///out/film/a.mp4", video_codec="h264_nvenc"),
        out("store:///out/film/b.mp4", audio_codec="libopus")])
    del doc["split"]
    assert parse(doc, ROOTS).capabilities() == ("aac", "gpu", "h264_nvenc", "libopus", "libx264")
    expected = {"plan": ("gpu",), "segment": ("gpu", "h264_nvenc", "libx264"),
                "audio": ("aac", "gpu", "libopus"), "stitch": ("gpu",), "sweep": ("gpu",)}
    for kind, needs in expected.items():
        part = {**doc, "step": STEPS[kind]}
        if kind in ("plan", "sweep"):
            part["outputs"] = []
        assert parse(part, ROOTS).capabilities() == needs, kind


def test_a_part_knows_how_long_its_output_is() -> None:
    assert roundtrip(child("segment")).expected_duration_s() == 12.0
    assert roundtrip(child("audio")).expected_duration_s() == 120.0
    assert roundtrip(child("stitch")).expected_duration_s() == 34.0
    assert roundtrip(child("plan")).expected_duration_s() is None  # a file: unknown unprobed
    assert roundtrip(child("sweep")).expected_duration_s() is None


# --- the workspace ------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "base"), [
    ({}, "store:///out/film"),
    ({"outputs": [out("/srv/media/out/x/a.mp4")]}, "/srv/media/out/x"),
    ({"outputs": [out("https://dav.example.com/o/a.mp4"), out("/srv/media/o2/b.mp4")]},
     "/srv/media/o2"),
    ({"outputs": [out("https://dav.example.com/o/a.mp4")]}, "store:///in"),
    ({"input": "/srv/media/in/f.mov", "outputs": [out("https://dav.example.com/a.mp4")]},
     "/srv/media/in"),
    ({"outputs": [out("store:///top.mp4")]}, "store://"),
])
def test_the_workspace_goes_beside_the_first_store_or_media_root_output(
        changes: dict[str, Any], base: str) -> None:
    spec = parse(split_doc(**changes), ROOTS, check_filesystem=False)
    assert jobspec.workspace_base(spec) == base
    place = jobspec.workspace(base, PARENT)
    assert place == f"{base}/.ffrtmp-split-{PARENT}"
    roundtrip(child("sweep", workspace=place))  # a step accepts the place it computes


def test_the_names_inside_the_workspace() -> None:
    assert jobspec.segment_name(3, 1) == "seg-00003.r1.mp4"
    assert jobspec.segment_name(999, 15) == "seg-00999.r15.mp4"
    assert jobspec.audio_name(0) == "audio.a0.mp4"
    assert jobspec.segment_name(0, 0).endswith(jobspec.INTERMEDIATE_EXTENSION)


def test_one_audio_track_per_distinct_audio_encoding_in_output_order() -> None:
    spec = parse(split_doc(outputs=[
        out("/srv/media/a.mp4", "h264-1080p"), out("/srv/media/b.mp4", "h264-480p"),
        out("/srv/media/c.mp4", "h264-720p"), out("/srv/media/d.mp4", "h264-360p")]),
        ROOTS, check_filesystem=False)
    tracks = jobspec.audio_tracks(spec)
    assert [t.bitrate.text for t in tracks if t.bitrate] == ["128k", "96k"]
    assert [jobspec.track_of(spec, rung) for rung in range(4)] == [0, 1, 0, 1]


# --- the plan -----------------------------------------------------------------------------------

PLAN = {"segments": [{"start_s": "0.000000", "frames": 300, "duration_s": 12.0},
                     {"start_s": "12.000000", "frames": 300, "duration_s": 12.0},
                     {"start_s": "24.000000", "frames": 250, "duration_s": 10.0}],
        "audio": True, "duration_s": 34.0, "frames": 850}


def test_a_plan_round_trips() -> None:
    plan = Plan.from_dict(PLAN)
    assert plan.to_dict() == PLAN
    assert Plan.from_dict(plan.to_dict()) == plan
    assert [c.start_s for c in plan.segments] == ["0.000000", "12.000000", "24.000000"]


def bad_plan(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(PLAN)
    target: Any = doc
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "field", "words"), [
    ("segments", [], "plan.segments", "at least one segment"),
    ("segments", "x", "plan.segments", "at least one segment"),
    ("segments", [PLAN["segments"][0]] * 1001, "plan.segments", "at most 1000"),
    ("segments.1.start_s", "0.000000", "plan.segments[1].start_s", "later than the previous"),
    ("segments.2.start_s", "11.9999999", "plan.segments[2].start_s", "later than the previous"),
    ("segments.1.start_s", 12.0, "plan.segments[1].start_s", "decimal seconds as text"),
    ("segments.1.frames", 0, "plan.segments[1].frames", "between 1 and"),
    ("segments.1.duration_s", -1, "plan.segments[1].duration_s", "between"),
    ("segments.1.extra", 1, "plan.segments[1].extra", "not a known field"),
    ("segments.1.frames", KeyError, "plan.segments[1].frames", "is required"),
    ("audio", "yes", "plan.audio", "true or false"),
    ("audio", KeyError, "plan.audio", "is required"),
    ("duration_s", 0, "plan.duration_s", "between"),
    ("frames", 849, "plan.frames", "sum of the segments"),
    ("frames", 0, "plan.frames", "between 1 and"),
    ("cuts", [], "plan.cuts", "not a known field"),
])
def test_a_bad_plan_is_refused(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(FieldError) as info:
        Plan.from_dict(bad_plan(path, value))
    assert (info.value.field, words in info.value.message) == (field, True), info.value


def test_a_plan_names_the_field_it_was_read_from() -> None:
    with pytest.raises(FieldError) as info:
        Plan.from_dict({**PLAN, "audio": 1}, "result.plan")
    assert info.value.field == "result.plan.audio"
    with pytest.raises(FieldError):
        Plan.from_dict([], "result.plan")


# --- the children -------------------------------------------------------------------------------


def parent(**changes: Any) -> dict[str, Any]:
    doc = split_doc(queue="batch", priority="low", requires=["gpu"], intent="film",
                    limits={"cpu_max": "50000", "memory_max": "1G"}, **changes)
    return parse(doc, ROOTS, check_filesystem=False).to_dict()


def parsed(made: jobspec.Child) -> JobSpec:
    spec = roundtrip(made.spec)
    assert spec.step is not None and spec.step.kind == made.step
    assert spec.capabilities() == made.capabilities
    return spec


KEPT = ("input", "queue", "priority", "requires", "limits", "intent")


def test_the_plan_child_probes_the_parents_input() -> None:
    doc = parent()
    made = jobspec.plan_child(doc, PARENT, STORE_WS)
    assert made.step == Step.PLAN and made.capabilities == ("gpu",)
    spec = parsed(made)
    assert spec.step == PlanStep(PARENT, STORE_WS, 60.0)
    assert (spec.outputs, spec.split_s) == ((), None)
    assert all(made.spec[key] == doc[key] for key in KEPT)
    assert "split" not in made.spec


def test_the_part_children_encode_the_audio_then_every_cut_for_every_rung() -> None:
    doc = parent(outputs=[out("store:///out/film/index.m3u8", encoder_preset="fast"),
                          out("store:///out/film/lo.mp4", "h264-480p"),
                          out("store:///out/film/mid.mkv", "h264-720p", size="960x540")])
    audio_part, *segments = jobspec.part_children(doc, PARENT, STORE_WS, Plan.from_dict(PLAN))
    assert [c.step for c in (audio_part, *segments)] == [Step.AUDIO] + [Step.SEGMENT] * 3
    for index, part in enumerate(segments):
        spec = parsed(part)
        assert spec.step == SegmentStep(PARENT, STORE_WS, index, PLAN["segments"][index]["start_s"],
                                        PLAN["segments"][index]["frames"],
                                        PLAN["segments"][index]["duration_s"])
        assert [o["url"] for o in part.spec["outputs"]] == [
            f"{STORE_WS}/seg-{index:05d}.r{rung}.mp4" for rung in range(3)]
        assert [{k: v for k, v in o.items() if k != "url"} for o in part.spec["outputs"]] == [
            {k: v for k, v in o.items() if k != "url"} for o in doc["outputs"]]
        assert all(part.spec[key] == doc[key] for key in KEPT)
        assert part.capabilities == ("gpu", "libx264")
    audio = parsed(audio_part)
    assert audio.step == AudioStep(PARENT, STORE_WS, 34.0)
    assert [o["url"] for o in audio_part.spec["outputs"]] == [f"{STORE_WS}/audio.a0.mp4",
                                                              f"{STORE_WS}/audio.a1.mp4"]
    assert [o["preset"] for o in audio_part.spec["outputs"]] == ["h264-720p", "h264-480p"]
    assert audio_part.capabilities == ("aac", "gpu")


def test_a_source_without_audio_has_no_audio_child_and_a_stitch_without_tracks() -> None:
    doc, plan = parent(), Plan.from_dict({**PLAN, "audio": False})
    made = jobspec.part_children(doc, PARENT, STORE_WS, plan)
    assert [c.step for c in made] == [Step.SEGMENT] * 3
    stitch = parsed(jobspec.stitch_child(doc, PARENT, STORE_WS, plan))
    assert isinstance(stitch.step, StitchStep) and stitch.step.audio == 0


def test_the_stitch_child_writes_the_parents_outputs() -> None:
    doc = parent()
    made = jobspec.stitch_child(doc, PARENT, STORE_WS, Plan.from_dict(PLAN))
    assert made.step == Step.STITCH and made.capabilities == ("gpu",)
    spec = parsed(made)
    assert made.spec["outputs"] == doc["outputs"]
    assert spec.step == StitchStep(PARENT, STORE_WS, (300, 300, 250), (12.0, 12.0, 10.0), 2,
                                   34.0)
    assert len(spec.reads()) == 3 * 2 + 2


def test_the_sweep_child_writes_nothing() -> None:
    doc = parent()
    made = jobspec.sweep_child(doc, PARENT, ROOT_WS)
    spec = parsed(made)
    assert (made.step, spec.outputs, spec.reads()) == (Step.SWEEP, (), ())
    assert spec.step == SweepStep(PARENT, ROOT_WS)


def test_the_builders_leave_the_parent_doc_alone() -> None:
    doc = parent()
    before = copy.deepcopy(doc)
    plan = Plan.from_dict(PLAN)
    jobspec.plan_child(doc, PARENT, STORE_WS)
    jobspec.part_children(doc, PARENT, STORE_WS, plan)
    jobspec.stitch_child(doc, PARENT, STORE_WS, plan)
    jobspec.sweep_child(doc, PARENT, STORE_WS)
    assert doc == before
