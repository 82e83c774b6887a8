"""The cut algorithm of a split job, from ffprobe's text to the plan (``agent/split_plan.py``)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from ffrtmp.agent.split_plan import (
    Packet,
    PlanError,
    Streams,
    parse_packets,
    parse_streams,
    plan,
    seek_text,
)

NO_AUDIO = Streams(start_time=Decimal(0), duration_s=None, audio=False)


def stream(seconds: float, fps: int = 25, gop: int = 25, *, start: str = "0",
           bframes: bool = False) -> list[Packet]:
    """Packets of a constant-rate video: a keyframe every ``gop`` frames; with ``bframes``, in
    decode order (each pair of B-frames after the P-frame they lean on: I P B B P B B ...)."""
    count = round(seconds * fps)
    origin, step = Decimal(start), Decimal(1) / fps
    shown = [Packet(origin + (i * step).quantize(Decimal("0.000001")), i % gop == 0)
             for i in range(count)]
    return _decode_order(shown) if bframes else shown


def _decode_order(shown: list[Packet]) -> list[Packet]:
    """Each anchor three frames on is stored before the two B-frames shown ahead of it."""
    out: list[Packet] = []
    i = 0
    while i < len(shown):
        anchor = i + 3 if i + 3 < len(shown) and not shown[i + 1].key and not shown[i + 2].key else None
        if anchor is None:
            out.append(shown[i])
            i += 1
            continue
        out += [shown[i], shown[anchor], shown[i + 1], shown[i + 2]]
        i = anchor + 1
    return out


def starts(doc: dict) -> list[str]:
    return [s["start_s"] for s in doc["segments"]]


def check_totals(doc: dict, packets: list[Packet]) -> None:
    assert sum(s["frames"] for s in doc["segments"]) == len(packets) == doc["frames"]
    assert all(s["frames"] >= 1 for s in doc["segments"])


def test_cuts_at_the_keyframes_on_each_multiple_of_the_target() -> None:
    packets = stream(12)
    doc = plan(packets, NO_AUDIO, 3, 1000)
    assert starts(doc) == ["0.000000", "3.000000", "6.000000", "9.000000"]
    assert [s["frames"] for s in doc["segments"]] == [75, 75, 75, 75]
    assert [s["duration_s"] for s in doc["segments"]] == [3.0, 3.0, 3.0, 3.0]
    assert doc["audio"] is False and doc["duration_s"] == 12.0
    check_totals(doc, packets)


def test_a_tail_shorter_than_half_the_target_joins_the_segment_before() -> None:
    packets = stream(10)  # targets 3, 6, 9: the cut at 9 would leave 1 s
    doc = plan(packets, NO_AUDIO, 3, 1000)
    assert starts(doc) == ["0.000000", "3.000000", "6.000000"]
    assert [s["frames"] for s in doc["segments"]] == [75, 75, 100]
    assert doc["segments"][-1]["duration_s"] == 4.0
    check_totals(doc, packets)


def test_a_tail_of_half_the_target_or_more_is_its_own_segment() -> None:
    doc = plan(stream(11), NO_AUDIO, 3, 1000)
    assert starts(doc) == ["0.000000", "3.000000", "6.000000", "9.000000"]
    assert doc["segments"][-1]["frames"] == 50


def test_a_keyframe_interval_that_does_not_divide_the_target() -> None:
    packets = stream(20, gop=62)  # a keyframe every 2.48 s, target 4 s
    doc = plan(packets, NO_AUDIO, 4, 1000)
    keys = {p.pts for p in packets if p.key}
    cuts = [Decimal(s) for s in starts(doc)]
    assert all(c in keys for c in cuts)
    assert cuts == [Decimal(x) for x in ("0", "4.96", "7.44", "12.4", "14.88")]
    assert all(b - a >= 2 for a, b in itertools.pairwise(cuts))
    check_totals(doc, packets)


def test_a_keyframe_interval_longer_than_the_target_cuts_each_keyframe_once() -> None:
    packets = stream(30, gop=250)  # keyframes at 0, 10, 20
    doc = plan(packets, NO_AUDIO, 3, 1000)
    assert starts(doc) == ["0.000000", "10.000000", "20.000000"]
    assert [s["frames"] for s in doc["segments"]] == [250, 250, 250]


def test_b_frames_count_by_presentation_time_not_decode_order() -> None:
    packets = stream(12, gop=24, bframes=True)
    assert [p.pts for p in packets] != sorted(p.pts for p in packets)  # really reordered
    doc = plan(packets, NO_AUDIO, 3, 1000)
    cuts = [Decimal(s) for s in starts(doc)]
    assert cuts == [Decimal(x) for x in ("0", "2.88", "5.76", "8.64")]
    times = sorted(p.pts for p in packets)
    bounds = [*cuts, Decimal("99")]
    expected = [sum(1 for t in times if a <= t < b) for a, b in itertools.pairwise(bounds)]
    assert [s["frames"] for s in doc["segments"]] == expected
    check_totals(doc, packets)


def test_one_keyframe_only_is_one_segment() -> None:
    packets = stream(8, gop=10_000)
    doc = plan(packets, NO_AUDIO, 2, 1000)
    assert starts(doc) == ["0.000000"]
    assert doc["segments"][0]["frames"] == 200
    assert doc["segments"][0]["duration_s"] == 8.0


def test_too_many_segments_lengthen_the_target() -> None:
    packets = stream(100)
    doc = plan(packets, NO_AUDIO, 1, 10)
    assert 1 < len(doc["segments"]) <= 10
    check_totals(doc, packets)


def test_start_is_relative_to_the_formats_start_time_exactly() -> None:
    packets = stream(6, start="1.480000")  # an MPEG-TS clock starts late
    streams = Streams(start_time=Decimal("1.400000"), duration_s=6.08, audio=True)
    doc = plan(packets, streams, 2, 1000)
    assert starts(doc) == ["0.080000", "2.080000", "4.080000"]
    assert doc["audio"] is True and doc["duration_s"] == 6.08


def test_seek_text_is_exact_decimal_floored_to_microseconds() -> None:
    assert seek_text("36.036000", "0.000000") == "36.036000"
    assert seek_text("0.1", "0.2") == "0.000000"  # never before the start of the file
    assert seek_text(Decimal("1.0000019"), Decimal(0)) == "1.000001"
    assert seek_text("100000.000001", "0.000001") == "100000.000000"  # no float round trip


def test_parse_packets_reads_ffprobe_csv_in_its_variants() -> None:
    text = "1.480000,K_,\n\n1.600000,__,\n\n1.520000,__\n-0.040000,_D\n"
    assert parse_packets(text) == [Packet(Decimal("1.48"), True), Packet(Decimal("1.6"), False),
                                   Packet(Decimal("1.52"), False)]


@pytest.mark.parametrize(("text", "message"), [
    ("", "no video stream"), ("\n\n", "no video stream"), ("N/A,K_\n", "no timestamp"),
    ("abc,K_\n", "not a timestamp"), ("inf,K_\n", "not a timestamp")])
def test_parse_packets_refuses_what_cannot_be_cut(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_packets(text)


def test_parse_streams() -> None:
    text = ('{"programs": [], "streams": [{"codec_type": "video"}, {"codec_type": "audio"}],'
            ' "format": {"start_time": "1.400000", "duration": "120.021333"}}')
    assert parse_streams(text) == Streams(Decimal("1.4"), 120.021333, True)
    assert parse_streams('{"streams": [{"codec_type": "video"}], "format": {}}') == NO_AUDIO
    with pytest.raises(PlanError):
        parse_streams("not json")
