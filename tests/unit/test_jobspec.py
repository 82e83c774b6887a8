"""Job spec parsing: accepted shapes, every rejection naming its field, symlink escapes."""

from __future__ import annotations

import copy
import json
import os
import pickle
from typing import Any

import pytest

from ffrtmp import jobspec
from ffrtmp.jobspec import FileSource, JobSpec, Limits, SpecError, parse

ROOTS = ["/srv/media"]

DESIGN_EXAMPLE = """
{"input": "testsrc://?duration=10&size=1280x720&rate=30",
 "outputs": [{"url": "file:///srv/media/out/demo-720p.mp4", "preset": "h264-720p"},
             {"url": "file:///srv/media/out/demo-480p.mp4", "preset": "h264-480p", "video_bitrate": "900k"}],
 "queue": "default", "priority": "medium", "requires": [], "duration_s": null, "intent": "demo"}
"""


def minimal(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"input": "/srv/media/in/movie.mov",
                           "outputs": [{"url": "/srv/media/out/movie.mp4", "preset": "h264-720p"}]}
    doc.update(top)
    return doc


def with_output(**fields: Any) -> dict[str, Any]:
    out = {"url": "/srv/media/out/movie.mp4", "preset": "h264-720p", **fields}
    return minimal(outputs=[out])


# --- accepted ---------------------------------------------------------------------------------


def test_design_example_verbatim() -> None:
    spec = parse(json.loads(DESIGN_EXAMPLE), ROOTS)
    assert spec.input_kind == "testsrc"
    assert [o.kind for o in spec.outputs] == ["file", "file"]
    assert [o.preset for o in spec.outputs] == ["h264-720p", "h264-480p"]
    assert spec.outputs[0].settings["size"] == "1280x720"
    assert spec.outputs[1].settings["video_bitrate"] == "900k"
    assert spec.outputs[1].settings["size"] == "854x480"
    assert (spec.queue, spec.priority, spec.requires) == ("default", "medium", ())
    assert spec.limits == Limits(None, None)
    assert spec.duration_s is None
    assert spec.intent == "demo"
    assert spec.is_live is False
    assert spec.capabilities() == ("aac", "libx264")
    assert spec.expected_duration_s() == 10.0


def test_defaults() -> None:
    spec = parse(minimal(), ROOTS)
    assert spec == JobSpec(source=FileSource(url="/srv/media/in/movie.mov",
                                             path="/srv/media/in/movie.mov"),
                           outputs=spec.outputs, queue="default", priority="medium",
                           requires=(), limits=Limits(), duration_s=None, intent=None)
    assert spec.expected_duration_s() is None


@pytest.mark.parametrize(("source", "kind", "live"), [
    ("/srv/media/in.mp4", "file", False),
    ("file:///srv/media/sub/dir/in.mkv", "file", False),
    ("http://cdn.example.com/in.mp4", "remote", False),  # staged by the agent first
    ("store:///in/a.mp4", "remote", False),
    ("https://cdn.example.com:8443/a/b.m3u8?token=x", "url", False),
    ("rtmp://ingest.example.com/live/key", "url", True),
    ("rtmps://ingest.example.com:443/live/key", "url", True),
    ("srt://10.0.0.5:9000?mode=caller", "url", True),
    ("testsrc://", "testsrc", False),
    ("testsrc://?duration=2.5", "testsrc", False),
    ("testsrc://?rate=29.97&size=640x360&duration=86400", "testsrc", False),
])
def test_inputs(source: str, kind: str, live: bool) -> None:
    spec = parse(minimal(input=source), ROOTS)
    assert (spec.input, spec.input_kind, spec.is_live) == (source, kind, live)


@pytest.mark.parametrize(("url", "kind"), [
    ("/srv/media/out/a.mp4", "file"),
    ("/srv/media/out/a.MKV", "file"),
    ("file:///srv/media/out/new/dir/a.m3u8", "hls"),
    ("rtmp://live.example.com/app/stream", "rtmp"),
    ("rtmps://live.example.com:443/app/stream?key=1", "rtmp"),
])
def test_output_kinds(url: str, kind: str) -> None:
    spec = parse(with_output(url=url), ROOTS)
    assert spec.outputs[0].kind == kind
    assert spec.is_live is (kind == "rtmp")


def test_testsrc_defaults_and_duration_cap() -> None:
    assert parse(minimal(input="testsrc://"), ROOTS).expected_duration_s() == 10.0
    capped = parse(minimal(input="testsrc://?duration=30", duration_s=12), ROOTS)
    assert capped.expected_duration_s() == 12.0
    longer_cap = parse(minimal(input="testsrc://?duration=5", duration_s=12.5), ROOTS)
    assert longer_cap.expected_duration_s() == 5.0
    assert parse(minimal(duration_s=7), ROOTS).expected_duration_s() == 7.0
    params = jobspec.testsrc_params("testsrc://?size=0640x0360&rate=25.0")
    assert (params.duration_s, params.size, params.rate) == (10.0, "640x360", "25")


def test_overrides_are_merged_and_normalised() -> None:
    spec = parse(with_output(video_codec="h264_nvenc", video_bitrate=4_000_000, size="640x360",
                             fps=29.97, encoder_preset="ultrafast", audio_codec="libopus",
                             audio_bitrate="96k"), ROOTS)
    assert dict(spec.outputs[0].settings) == {
        "video_codec": "h264_nvenc", "video_bitrate": "4000000", "size": "640x360",
        "fps": "29.97", "encoder_preset": "ultrafast", "audio_codec": "libopus",
        "audio_bitrate": "96k"}
    assert spec.capabilities() == ("h264_nvenc", "libopus")
    assert parse(with_output(fps="25"), ROOTS).outputs[0].settings["fps"] == "25"
    assert parse(with_output(fps=60), ROOTS).outputs[0].settings["fps"] == "60"


def test_copy_preset() -> None:
    spec = parse(with_output(url="/srv/media/out/a.m3u8", preset="copy"), ROOTS)
    assert dict(spec.outputs[0].settings) == {"video_codec": "copy", "audio_codec": "copy"}
    assert spec.capabilities() == ()
    # Re-encoding one stream of a copy preset is allowed, and so are its encoding settings.
    mixed = parse(with_output(preset="copy", video_codec="libx264", size="640x360"), ROOTS)
    assert dict(mixed.outputs[0].settings) == {"video_codec": "libx264", "audio_codec": "copy",
                                               "size": "640x360"}


def test_video_copy_override_drops_preset_encoding_settings() -> None:
    spec = parse(with_output(video_codec="copy"), ROOTS)
    assert dict(spec.outputs[0].settings) == {"video_codec": "copy", "audio_codec": "aac",
                                              "audio_bitrate": "128k"}


def test_requires_and_capabilities() -> None:
    spec = parse(minimal(requires=["cuda", "h264_nvenc", "cuda"]), ROOTS)
    assert spec.requires == ("cuda", "h264_nvenc")
    assert spec.capabilities() == ("aac", "cuda", "h264_nvenc", "libx264")


@pytest.mark.parametrize(("limits", "expected"), [
    (None, Limits(None, None)),
    ({}, Limits(None, None)),
    ({"cpu_max": "max"}, Limits("max 100000", None)),
    ({"cpu_max": "max 100000"}, Limits("max 100000", None)),
    ({"cpu_max": "50000 100000"}, Limits("50000 100000", None)),
    ({"cpu_max": "200000"}, Limits("200000 100000", None)),
    ({"memory_max": "512M"}, Limits(None, str(512 << 20))),
    ({"memory_max": "2G", "cpu_max": None}, Limits(None, str(2 << 30))),
    ({"memory_max": "2g"}, Limits(None, str(2 << 30))),
    ({"memory_max": 1 << 30}, Limits(None, str(1 << 30))),
    ({"memory_max": "1073741824"}, Limits(None, "1073741824")),
    ({"memory_max": "max"}, Limits(None, "max")),
])
def test_limits(limits: Any, expected: Limits) -> None:
    assert parse(minimal(limits=limits), ROOTS).limits == expected


def test_several_roots() -> None:
    spec = parse(minimal(input="/mnt/ingest/a.mov",
                         outputs=[{"url": "/srv/media/a.mp4", "preset": "copy"}]),
                 ["/srv/media", "/mnt/ingest"])
    assert spec.input == "/mnt/ingest/a.mov"


def test_root_slash_allows_any_absolute_path() -> None:
    assert parse(minimal(input="/anything/in.mov"), ["/"]).input == "/anything/in.mov"


# --- round trip -------------------------------------------------------------------------------


ROUND_TRIP_CASES = [
    json.loads(DESIGN_EXAMPLE),
    minimal(),
    minimal(input="rtmp://in.example.com/live/k", queue="live", priority="high",
            requires=["h264_nvenc"], limits={"cpu_max": "50000", "memory_max": "1G"},
            duration_s=3600, intent="event stream",
            outputs=[{"url": "rtmp://out.example.com/app/s", "preset": "h264-720p",
                      "video_codec": "h264_nvenc"},
                     {"url": "/srv/media/live/s.m3u8", "preset": "copy"}]),
    with_output(preset="copy", video_codec="libx264", fps=25),
    with_output(video_codec="copy", audio_bitrate="64k"),
    with_output(preset="h265-1080p", size="1280x720", video_bitrate=900000),
]


@pytest.mark.parametrize("doc", ROUND_TRIP_CASES)
def test_round_trip(doc: dict[str, Any]) -> None:
    spec = parse(doc, ROOTS)
    canonical = spec.to_dict()
    assert parse(json.loads(json.dumps(canonical)), ROOTS) == spec
    assert parse(canonical, ROOTS).to_dict() == canonical
    assert set(canonical) == {"input", "outputs", "queue", "priority", "requires", "limits",
                              "duration_s", "intent"}
    hash(spec)  # frozen all the way down, so specs can key dicts and sets


def test_to_dict_lists_only_real_overrides() -> None:
    doc = with_output(size="1280x720", video_bitrate="900k")
    assert parse(doc, ROOTS).to_dict()["outputs"] == [
        {"url": "/srv/media/out/movie.mp4", "preset": "h264-720p", "video_bitrate": "900k"}]


# --- rejected ---------------------------------------------------------------------------------


def _set(path: str, value: Any) -> dict[str, Any]:
    """A valid spec with the value at ``outputs.0.size``-style ``path`` replaced (or deleted)."""
    doc = minimal(limits={})
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return doc


class _Delete:
    """Marks a field to remove; survives deepcopy so the table can be copied per test."""

    def __repr__(self) -> str:
        return "<deleted>"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Delete:
        return self


_DELETE = _Delete()

REJECTIONS: list[tuple[str, Any, str, str]] = [
    # path to change, value, field named, fragment of the message
    ("input", _DELETE, "input", "is required"),
    ("outputs", _DELETE, "outputs", "is required"),
    ("bogus", 1, "bogus", "not a known field"),
    ("outputs.0.bogus", 1, "outputs[0].bogus", "not a known field"),
    ("limits.bogus", 1, "limits.bogus", "not a known field"),
    ("queue", "urgent", "queue", "must be one of live, default, batch"),
    ("queue", None, "queue", "must be one of live, default, batch"),
    ("priority", 1, "priority", "must be one of high, medium, low"),
    ("requires", "h264_nvenc", "requires", "must be a list"),
    ("requires", [1], "requires[0]", "capability name"),
    ("requires", ["ok", "no spaces"], "requires[1]", "capability name"),
    ("requires", ["x" * 65], "requires[0]", "capability name"),
    ("requires", [f"c{i}" for i in range(33)], "requires", "at most 32"),
    ("duration_s", True, "duration_s", "must be a number"),
    ("duration_s", "10", "duration_s", "number of seconds or null"),
    ("duration_s", 0, "duration_s", "between 0.001 and 86400"),
    ("duration_s", -5, "duration_s", "between 0.001 and 86400"),
    ("duration_s", 86400.5, "duration_s", "between 0.001 and 86400"),
    ("duration_s", 10**400, "duration_s", "between 0.001 and 86400"),
    ("duration_s", float("nan"), "duration_s", "finite"),
    ("duration_s", float("inf"), "duration_s", "finite"),
    ("intent", 5, "intent", "must be a string"),
    ("intent", "", "intent", "must not be empty"),
    ("intent", "x" * 201, "intent", "at most 200"),
    ("intent", "two\nlines", "intent", "control characters"),
    ("limits", [], "limits", "must be a JSON object"),
    ("limits", {"cpu_max": 50000}, "limits.cpu_max", "cpu.max syntax"),
    ("limits", {"cpu_max": "half"}, "limits.cpu_max", "cpu.max syntax"),
    ("limits", {"cpu_max": "50000 100"}, "limits.cpu_max", "period"),
    ("limits", {"cpu_max": "10 100000"}, "limits.cpu_max", "quota"),
    ("limits", {"memory_max": "512X"}, "limits.memory_max", "512M"),
    ("limits", {"memory_max": True}, "limits.memory_max", "512M"),
    ("limits", {"memory_max": -1}, "limits.memory_max", "512M"),
    ("limits", {"memory_max": "1M"}, "limits.memory_max", "at least 16M"),
    ("limits", {"memory_max": 1.5e9}, "limits.memory_max", "512M"),
    # input
    ("input", 7, "input", "must be a string"),
    ("input", "", "input", "must not be empty"),
    ("input", "ftp://example.com/a.mp4", "input", "scheme ftp is not allowed; use"),
    ("input", "in/movie.mov", "input", "must be an absolute path"),
    ("input", "/etc/passwd", "input", "path escapes the media roots /srv/media"),
    ("input", "/srv/mediafoo/a.mov", "input", "path escapes the media roots"),
    ("input", "/srv/media", "input", "path escapes the media roots"),
    ("input", "/srv/media/../etc/passwd", "input", "'..'"),
    ("input", "file:///srv/media/a/../../x", "input", "'..'"),
    ("input", "file://host/srv/media/a.mov", "input", "file:///absolute/path"),
    ("input", "file:/srv/media/a.mov", "input", "file:///absolute/path"),
    ("input", "/srv/media/a\x00.mov", "input", "control characters"),
    ("input", "/srv/media/\ud800.mov", "input", "UTF-8"),
    ("input", "/srv/media/" + "a" * 2048, "input", "at most 2048"),
    ("input", "http:///path-only", "input", "must name a host"),
    ("input", "rtmp://host:99999/live", "input", "not a valid URL"),
    ("input", "http://[::1/x", "input", "not a valid URL"),
    ("input", "http://host/a b.mp4", "input", "spaces"),
    ("input", "RTMP://host/live/x", "input", "scheme RTMP is not allowed"),
    ("input", "testsrc://?foo=1", "input", "unknown testsrc parameter 'foo'"),
    ("input", "testsrc://?duration=0", "input", "between 0.001 and 86400"),
    ("input", "testsrc://?duration=86401", "input", "between 0.001 and 86400"),
    ("input", "testsrc://?duration=1e3", "input", "number of seconds"),
    ("input", "testsrc://?size=1281x720", "input", "even numbers"),
    ("input", "testsrc://?size=big", "input", "WIDTHxHEIGHT"),
    ("input", "testsrc://?rate=0", "input", "frame rate"),
    ("input", "testsrc://?rate=30&rate=25", "input", "given twice"),
    ("input", "testsrc://?duration", "input", "key=value"),
    ("input", "testsrc://host?duration=1", "input", "testsrc://?duration="),
    # outputs
    ("outputs", {}, "outputs", "must be a list"),
    ("outputs", [], "outputs", "at least one"),
    ("outputs", [{"url": f"/srv/media/{i}.mp4", "preset": "copy"} for i in range(17)],
     "outputs", "at most 16"),
    ("outputs.0", "x.mp4", "outputs[0]", "must be a JSON object"),
    ("outputs.0.url", _DELETE, "outputs[0].url", "is required"),
    ("outputs.0.preset", _DELETE, "outputs[0].preset", "is required; one of h264-1080p"),
    ("outputs.0.preset", "h264-4k", "outputs[0].preset", "must be one of h264-1080p, "),
    ("outputs.0.url", "ftp://example.com/a.mp4", "outputs[0].url", "scheme ftp is not allowed"),
    ("outputs.0.url", "http://example.com/a.avi", "outputs[0].url", "must end in .mp4, .mkv or .m3u8"),
    ("outputs.0.url", "store:///out/", "outputs[0].url", "must name a file"),
    ("outputs.0.url", "store:///out/../x.mp4", "outputs[0].url", "'..' segments"),
    ("outputs.0.url", "store://host/x.mp4", "outputs[0].url", "store:///path"),
    ("outputs.0.url", "https://h/x.m3u8?X-Amz-Signature=s", "outputs[0].url", "presigned"),
    ("input", "store:///in/a b.mp4", "input", "percent-encode"),
    ("input_fetch", "later", "input_fetch", "one of"),
    ("outputs.0.url", "srt://example.com:9000", "outputs[0].url", "scheme srt is not allowed"),
    ("outputs.0.url", "/srv/media/a.avi", "outputs[0].url", ".mp4, .mkv or .m3u8"),
    ("outputs.0.url", "/srv/media/mp4", "outputs[0].url", ".mp4, .mkv or .m3u8"),
    ("outputs.0.url", "/tmp/a.mp4", "outputs[0].url", "path escapes the media roots /srv/media"),
    ("outputs.0.url", "/srv/media/in/movie.mov", "outputs[0].url", ".mp4"),
    ("outputs.0.url", "rtmp://live.example.com", "outputs[0].url", "application and stream"),
    ("outputs.0.url", "rtmp://live.example.com/", "outputs[0].url", "application and stream"),
    ("outputs.0.url", "rtmp:///app/stream", "outputs[0].url", "must name a host"),
    ("outputs.0.url", None, "outputs[0].url", "must be a string"),
    ("outputs.0.video_codec", "LIBX264", "outputs[0].video_codec", "encoder name"),
    ("outputs.0.video_codec", "x" * 33, "outputs[0].video_codec", "encoder name"),
    ("outputs.0.audio_codec", "-f", "outputs[0].audio_codec", "encoder name"),
    ("outputs.0.video_bitrate", "fast", "outputs[0].video_bitrate", "900k, 4M or 128000"),
    ("outputs.0.video_bitrate", "900kb", "outputs[0].video_bitrate", "900k, 4M or 128000"),
    ("outputs.0.video_bitrate", "0k", "outputs[0].video_bitrate", "900k, 4M or 128000"),
    ("outputs.0.video_bitrate", "600M", "outputs[0].video_bitrate", "between 1k and 500M"),
    ("outputs.0.video_bitrate", True, "outputs[0].video_bitrate", "900k, 4M or 128000"),
    ("outputs.0.audio_bitrate", 12.5, "outputs[0].audio_bitrate", "900k, 4M or 128000"),
    ("outputs.0.size", "1280x721", "outputs[0].size", "even numbers"),
    ("outputs.0.size", "1280*720", "outputs[0].size", "WIDTHxHEIGHT"),
    ("outputs.0.size", "8194x720", "outputs[0].size", "8192"),
    ("outputs.0.size", [1280, 720], "outputs[0].size", "WIDTHxHEIGHT"),
    ("outputs.0.fps", 0, "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.fps", 241, "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.fps", "thirty", "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.fps", True, "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.fps", float("nan"), "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.fps", 10**400, "outputs[0].fps", "between 1 and 240"),
    ("outputs.0.encoder_preset", "turbo", "outputs[0].encoder_preset",
     "must be one of ultrafast, superfast"),
    # a trailing newline must not slip past an end-of-string anchor
    ("outputs.0.video_codec", "libx264\n", "outputs[0].video_codec", "encoder name"),
    ("outputs.0.video_bitrate", "900k\n", "outputs[0].video_bitrate", "900k, 4M or 128000"),
    ("outputs.0.size", "1280x720\n", "outputs[0].size", "WIDTHxHEIGHT"),
    ("outputs.0.fps", "30\n", "outputs[0].fps", "between 1 and 240"),
    ("requires", ["cuda\n"], "requires[0]", "capability name"),
    ("limits", {"cpu_max": "max\n"}, "limits.cpu_max", "cpu.max syntax"),
    ("limits", {"memory_max": "512M\n"}, "limits.memory_max", "512M"),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), REJECTIONS,
                         ids=[f"{r[0]}={r[1]!r:.30}" for r in REJECTIONS])
def test_rejections_name_the_field(path: str, value: Any, field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse(_set(path, copy.deepcopy(value)), ROOTS)
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert str(caught.value) == f"{field}: {caught.value.message}"


@pytest.mark.parametrize(("overrides", "field", "stream"), [
    ({"size": "640x360"}, "size", "video"),
    ({"fps": 25}, "fps", "video"),
    ({"video_bitrate": "1M"}, "video_bitrate", "video"),
    ({"encoder_preset": "fast"}, "encoder_preset", "video"),
    ({"audio_bitrate": "64k"}, "audio_bitrate", "audio"),
])
def test_copy_refuses_encoding_overrides(overrides: dict[str, Any], field: str,
                                         stream: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse(with_output(preset="copy", **overrides), ROOTS)
    assert caught.value.field == f"outputs[0].{field}"
    assert caught.value.message == f"cannot be combined with a {stream} stream copy"


def test_copy_override_on_encoding_preset_refuses_encoding_overrides() -> None:
    with pytest.raises(SpecError) as caught:
        parse(with_output(video_codec="copy", size="640x360"), ROOTS)
    assert caught.value.field == "outputs[0].size"


@pytest.mark.parametrize(("first", "second"), [
    ("/srv/media/out/a.mp4", "/srv/media/out/a.mp4"),
    ("file:///srv/media/out/a.mp4", "/srv/media/out/./a.mp4"),
    ("/srv/media/out/a.m3u8", "/srv/media//out/a.m3u8"),
    ("/srv/media/out/a.mkv", "//srv/media/out/a.mkv"),
    ("rtmp://live.example.com/app/s", "rtmp://live.example.com/app/s"),
])
def test_duplicate_outputs(first: str, second: str) -> None:
    doc = minimal(outputs=[{"url": "/srv/media/other.mkv", "preset": "copy"},
                           {"url": first, "preset": "copy"},
                           {"url": second, "preset": "copy"}])
    with pytest.raises(SpecError) as caught:
        parse(doc, ROOTS)
    assert (caught.value.field, caught.value.message) == ("outputs[2].url",
                                                          "duplicates outputs[1].url")


def test_output_may_not_overwrite_the_input() -> None:
    doc = minimal(input="/srv/media/a.mp4", outputs=[{"url": "file:///srv/media/a.mp4",
                                                      "preset": "h264-720p"}])
    with pytest.raises(SpecError) as caught:
        parse(doc, ROOTS)
    assert caught.value.field == "outputs[0].url"
    assert "input" in caught.value.message


@pytest.mark.parametrize("obj", [None, [], "spec", 3, {1: "x"}])
def test_not_an_object(obj: Any) -> None:
    with pytest.raises(SpecError) as caught:
        parse(obj, ROOTS)
    assert caught.value.field == "spec"


def test_no_media_roots_means_no_local_files() -> None:
    with pytest.raises(SpecError, match="no media roots are configured"):
        parse(minimal(), [])
    assert parse(minimal(input="testsrc://",
                         outputs=[{"url": "rtmp://h/app/s", "preset": "copy"}]), []).is_live


def test_relative_media_root_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="absolute") as caught:
        parse(minimal(), ["srv/media"])
    assert not isinstance(caught.value, SpecError)


def test_spec_error_pickles() -> None:
    error = SpecError("outputs[1].preset", "must be one of copy")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - bytes made on the line itself
    assert (clone.field, clone.message, str(clone)) == (error.field, error.message, str(error))
    assert isinstance(clone, ValueError)


# --- the filesystem check -------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Any) -> dict[str, str]:
    """A media root holding symlinks that escape it, and a second root it may link into."""
    root, outside, other = tmp_path / "media", tmp_path / "outside", tmp_path / "other"
    for directory in (root / "in", outside, other):
        directory.mkdir(parents=True)
    (outside / "secret.mp4").write_bytes(b"")
    (root / "in" / "movie.mov").write_bytes(b"")
    (root / "escape").symlink_to(outside)
    (root / "secret.mp4").symlink_to(outside / "secret.mp4")
    (root / "alias.mov").symlink_to(root / "in" / "movie.mov")
    (root / "to-other").symlink_to(other)
    (tmp_path / "root-link").symlink_to(root)
    return {"root": str(root), "outside": str(outside), "other": str(other),
            "root_link": str(tmp_path / "root-link"), "absent": str(tmp_path / "absent")}


def _spec(source: str, target: str) -> dict[str, Any]:
    return {"input": source, "outputs": [{"url": target, "preset": "copy"}]}


def test_symlinked_input_escaping_the_root_is_rejected(tree: dict[str, str]) -> None:
    root = tree["root"]
    for source in (f"{root}/secret.mp4", f"file://{root}/escape/secret.mp4"):
        with pytest.raises(SpecError) as caught:
            parse(_spec(source, f"{root}/out.mkv"), [root])
        assert caught.value.field == "input"
        assert caught.value.message == f"path escapes the media roots {root} through a symlink"
    # Without the filesystem check only the lexical rule applies.
    assert parse(_spec(f"{root}/secret.mp4", f"{root}/out.mkv"), [root],
                 check_filesystem=False).input_kind == "file"


def test_output_below_an_escaping_symlink_is_rejected(tree: dict[str, str]) -> None:
    root = tree["root"]
    with pytest.raises(SpecError) as caught:
        parse(_spec(f"{root}/in/movie.mov", f"{root}/escape/not/yet/made/out.mp4"), [root])
    assert caught.value.field == "outputs[0].url"
    assert "through a symlink" in caught.value.message


def test_symlinks_that_stay_inside_are_fine(tree: dict[str, str]) -> None:
    root = tree["root"]
    spec = parse(_spec(f"{root}/alias.mov", f"{root}/new/dir/out.m3u8"), [root])
    assert spec.outputs[0].kind == "hls"
    # A link from one root into another root stays inside the media roots.
    parse(_spec(f"{root}/to-other/in.mov", f"{root}/out.mkv"), [root, tree["other"]])
    with pytest.raises(SpecError):
        parse(_spec(f"{root}/to-other/in.mov", f"{root}/out.mkv"), [root])


def test_a_root_that_is_itself_a_symlink(tree: dict[str, str]) -> None:
    link = tree["root_link"]
    assert parse(_spec(f"{link}/in/movie.mov", f"{link}/out.mp4"), [link]).input_kind == "file"


def test_absent_root_gets_the_lexical_check_only(tree: dict[str, str]) -> None:
    absent = tree["absent"]
    assert not os.path.exists(absent)
    spec = parse(_spec(f"{absent}/in.mov", f"{absent}/out.mp4"), [absent])
    assert spec.input == f"{absent}/in.mov"
    with pytest.raises(SpecError, match="path escapes"):
        parse(_spec(f"{tree['outside']}/secret.mp4", f"{absent}/out.mp4"), [absent])


def test_testsrc_realtime_must_be_0_or_1() -> None:
    spec = {"input": "testsrc://?realtime=yes",
            "outputs": [{"url": "file:///srv/media/rt.mp4", "preset": "h264-480p"}]}
    with pytest.raises(SpecError) as err:
        parse(spec, ["/srv/media"])
    assert err.value.field == "input" and "realtime" in err.value.message


def test_uploaded_outputs_are_written_in_the_outbox_then_delivered() -> None:
    spec = parse({"input": "store:///in/a.mp4", "outputs": [
        {"url": "store:///out/a/x.mp4", "preset": "h264-720p"},
        {"url": "https://dav.example.com/out/b/x.mp4?X-Amz-Signature=s", "preset": "h264-480p"},
        {"url": "store:///out/hls/index.m3u8", "preset": "h264-480p"}]}, ROOTS)
    assert [(o.kind, o.path, o.upload) for o in spec.outputs] == [
        ("file", "0/x.mp4", "store:///out/a/x.mp4"),
        ("file", "1/x.mp4", "https://dav.example.com/out/b/x.mp4?X-Amz-Signature=s"),
        ("hls", "2/index.m3u8", "store:///out/hls/index.m3u8")]
    assert spec.uploads and spec.input_fetch == "stage"
    assert "input_fetch" not in spec.to_dict()  # the default stays implicit


def test_an_uploaded_output_may_not_repeat_another() -> None:
    with pytest.raises(SpecError) as caught:
        parse({"input": "store:///in/a.mp4", "outputs": [
            {"url": "store:///out/x.mp4", "preset": "copy"},
            {"url": "store:///out/x.mp4", "preset": "h264-480p"}]}, ROOTS)
    assert caught.value.field == "outputs[1].url"


def test_streamed_inputs_say_so_in_the_canonical_form() -> None:
    spec = parse({"input": "https://cdn.example.com/a.mp4", "input_fetch": "stream",
                  "outputs": [{"url": "/srv/media/o.mp4", "preset": "copy"}]}, ROOTS)
    assert (spec.input_kind, spec.input_fetch) == ("url", "stream")
    assert spec.to_dict()["input_fetch"] == "stream"
    assert parse(spec.to_dict(), ROOTS) == spec


@pytest.mark.parametrize("doc", [
    {"input": "store:///in/a.mp4", "input_fetch": "stream"},
    {"input": "store:///live/index.m3u8"},  # a playlist is always FFmpeg's to read
])
def test_ffmpeg_never_reads_the_store_itself(doc: dict[str, Any]) -> None:
    """The store asks for credentials, which never go on FFmpeg's command line."""
    with pytest.raises(SpecError) as caught:
        parse({**doc, "outputs": [{"url": "/srv/media/o.mp4", "preset": "copy"}]}, ROOTS)
    assert caught.value.field == "input_fetch"
    assert "staged by the agent" in caught.value.message
