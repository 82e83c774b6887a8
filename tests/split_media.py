"""Media for the split tests: sources written with FFmpeg, and the checks that a split encode is
the unsplit one, frame for frame.

Every check returns a list of problems (empty when it holds) naming the frame, the time and what
ffprobe or the ``ssim`` filter said, so one failing assert shows everything that is wrong at once.
Timestamps are compared in each stream's own time base, read from ffprobe's packets (decode
order) and frames (presentation order, after decoding: what a player shows).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

RATE = 25
FRAME_S = 1 / RATE
AV_TOLERANCE_S = 0.050
SSIM_FLOOR = 0.98
SOURCE_SECONDS = 24
_STEADY = ["-sc_threshold", "0"]  # keyframes only where -g puts them: the seams are then known

# name -> the video encoder arguments of the source (a testsrc2 pattern and a sine tone)
SOURCES: dict[str, list[str]] = {
    # (a) a keyframe every 2 s: divides the 5 s target only at 10 s and 20 s
    "gop2s": ["-preset", "ultrafast", "-g", "50", "-keyint_min", "50", *_STEADY],
    # (b) a keyframe every 37 frames (1.48 s): no keyframe falls on a multiple of 5 s
    "gop37": ["-preset", "ultrafast", "-g", "37", "-keyint_min", "37", *_STEADY],
    # (c) B-frames: decode order differs from presentation order at every seam
    "bframes": ["-preset", "veryfast", "-bf", "3", "-g", "50", "-keyint_min", "50", *_STEADY],
    # (c') open GOPs: the leading B-frames after a keyframe refer to the GOP before it
    "open-gop": ["-preset", "veryfast", "-bf", "3", "-g", "50", "-keyint_min", "50", *_STEADY,
                 "-x264-params", "open-gop=1"],
}


def make_source(path: Path, kind: str, seconds: float = SOURCE_SECONDS, size: str = "640x360") -> Path:
    """A 25 fps test pattern with a 440 Hz tone, encoded to a file with ``SOURCES[kind]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", *SOURCES[kind], "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "96k", "-shortest", str(path)],
                   check=True, capture_output=True, timeout=120)
    return path


# --- what ffprobe says ---


@dataclass(frozen=True)
class Packet:
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class Track:
    """One stream of a file: packets in decode order, in the stream's time base."""

    time_base: Fraction
    packets: tuple[Packet, ...]

    def seconds(self, ticks: int) -> float:
        return float(ticks * self.time_base)

    @property
    def start(self) -> int:
        return min(p.pts for p in self.packets)

    @property
    def end(self) -> int:
        return max(p.pts + p.duration for p in self.packets)

    @property
    def duration_s(self) -> float:
        return self.seconds(self.end - self.start)

    def keyframes_s(self) -> list[float]:
        """Keyframe times from the stream's first presented frame."""
        return [self.seconds(p.pts - self.start) for p in self.packets if p.key]


@dataclass(frozen=True)
class Media:
    path: Path
    video: Track
    audio: Track | None
    frames: tuple[int, ...]  # presented frames' pts, as decoded, in the video's time base
    decode_errors: str

    @property
    def name(self) -> str:
        return self.path.name


def _ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=120, check=True)
    return {**json.loads(out.stdout), "stderr": out.stderr}


def _track(stream: dict[str, Any], packets: list[dict[str, Any]]) -> Track:
    mine = [p for p in packets if p["stream_index"] == stream["index"]
            and "D" not in p.get("flags", "") and p.get("pts") is not None]
    return Track(Fraction(stream["time_base"]), tuple(
        Packet(int(p["pts"]), int(p.get("dts", p["pts"])), int(p.get("duration") or 0), p["flags"][0] == "K")
        for p in mine))


def probe(path: Path) -> Media:
    """Packets of the first video and audio streams, and the video's decoded frames."""
    info = _ffprobe(path, "-show_entries", "stream=index,codec_type,time_base:"
                    "packet=stream_index,pts,dts,duration,flags")
    streams = {s["codec_type"]: s for s in reversed(info["streams"])}
    video = _track(streams["video"], info["packets"])
    audio = _track(streams["audio"], info["packets"]) if "audio" in streams else None
    decoded = _ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp")
    frames = tuple(int(f["best_effort_timestamp"]) for f in decoded["frames"])
    return Media(path, video, audio, frames, decoded["stderr"].strip())


# --- the checks ---


def stream_problems(media: Media, seams_s: list[float]) -> list[str]:
    """One stream a player can follow: decodes cleanly, DTS and PTS monotonic, one constant frame
    step (the sources are CFR), and a keyframe at each seam (seconds from the first frame)."""
    name, video = media.name, media.video
    problems = [f"{name}: decoding said {media.decode_errors!r}"] if media.decode_errors else []
    if not video.packets or not video.packets[0].key:
        problems.append(f"{name}: the first video packet is not a keyframe")
    for i, (before, after) in enumerate(itertools.pairwise(video.packets), 1):
        if after.dts <= before.dts:
            problems.append(f"{name}: DTS not increasing at packet {i}: {before.dts} then {after.dts}")
    problems += [f"{name}: packet {i} is presented before it is decoded (pts {p.pts} < dts {p.dts})"
                 for i, p in enumerate(video.packets) if p.pts < p.dts]
    problems += _continuity(media)
    keys = video.keyframes_s()
    for seam in seams_s:
        if not any(abs(key - seam) <= FRAME_S / 2 for key in keys):
            nearest = min(keys, key=lambda key: abs(key - seam), default=None)
            problems.append(f"{name}: no keyframe at the seam {seam:.3f} s (nearest {nearest})")
    return problems[:20]


def _continuity(media: Media) -> list[str]:
    frames, video = media.frames, media.video
    steps = [b - a for a, b in itertools.pairwise(frames)]
    if not steps:
        return [f"{media.name}: {len(frames)} frames decoded"]
    step = Counter(steps).most_common(1)[0][0]
    problems = []
    for i, gap in enumerate(steps, 1):
        if abs(gap - step) > 1:  # one tick of rounding in the container's time base
            problems.append(f"{media.name}: frame {i} at {video.seconds(frames[i]):.3f} s follows the one "
                            f"before by {video.seconds(gap):.4f} s, not {video.seconds(step):.4f} s")
    return problems


def compare_problems(split: Media, unsplit: Media) -> list[str]:
    """The split encode against the unsplit one: the same frames at the same times, the same
    durations within one frame, audio beside the video as in the unsplit encode."""
    name = f"{split.name} (split) vs {unsplit.name}"
    ours, theirs = _times(split), _times(unsplit)
    problems = []
    if len(ours) != len(theirs):
        problems.append(f"{name}: {len(ours)} video frames, the unsplit encode has {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if abs(a - b) > 0.001:
            problems.append(f"{name}: frame {i} is presented at {a:.4f} s, unsplit at {b:.4f} s")
            break
    pairs = [("video", split.video, unsplit.video)]
    if split.audio is None or unsplit.audio is None:
        problems.append(f"{name}: audio in split {split.audio is not None}, "
                        f"unsplit {unsplit.audio is not None}")
    else:
        pairs.append(("audio", split.audio, unsplit.audio))
        ours_at, theirs_at = _audio_offset(split), _audio_offset(unsplit)
        if abs(ours_at - theirs_at) > FRAME_S:
            problems.append(f"{name}: audio starts {ours_at:+.4f} s from the video, "
                            f"unsplit {theirs_at:+.4f} s")
    for kind, ours_track, theirs_track in pairs:
        if abs(ours_track.duration_s - theirs_track.duration_s) > FRAME_S:
            problems.append(f"{name}: {kind} lasts {ours_track.duration_s:.4f} s, "
                            f"unsplit {theirs_track.duration_s:.4f} s")
    return problems


def _audio_offset(media: Media) -> float:
    assert media.audio is not None
    return media.audio.seconds(media.audio.start) - media.video.seconds(media.video.start)


def _times(media: Media) -> list[float]:
    """Presented frames' times from the first one."""
    first = media.frames[0] if media.frames else 0
    return [media.video.seconds(pts - first) for pts in media.frames]


def av_problems(media: Media) -> list[str]:
    """Audio and video of one file last as long as each other, within 50 ms."""
    if media.audio is None:
        return [f"{media.name}: no audio stream"]
    video_s, audio_s = media.video.duration_s, media.audio.duration_s
    if abs(video_s - audio_s) > AV_TOLERANCE_S:
        return [f"{media.name}: video lasts {video_s:.4f} s, audio {audio_s:.4f} s"]
    return []


@dataclass(frozen=True)
class Ssim:
    average: float  # the filter's All: over the whole file
    minimum: float
    worst_frame: int
    frames: int


def ssim(distorted: Path, reference: Path) -> Ssim:
    """ffmpeg's ``ssim`` filter between two encodes of the same size, frame by frame."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-i", str(distorted),
                          "-i", str(reference), "-lavfi", "[0:v][1:v]ssim=stats_file=-", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=300, check=True)
    per_frame = [(int(n), float(value)) for n, value in
                 re.findall(r"^n:(\d+) .*All:([0-9.]+)", out.stdout, flags=re.MULTILINE)]
    average = re.findall(r"SSIM .*All:([0-9.]+)", out.stderr)
    if not per_frame or not average:
        raise AssertionError(f"no SSIM from ffmpeg:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    worst = min(per_frame, key=lambda item: item[1])
    return Ssim(float(average[-1]), worst[1], worst[0], len(per_frame))


def ssim_problems(split: Path, unsplit: Path, frames: int) -> list[str]:
    score = ssim(split, unsplit)
    print(f"{split.name}: {score.frames} frames, SSIM {score.average:.4f}, "  # shown with -s
          f"worst frame {score.worst_frame}: {score.minimum:.4f}")
    problems = []
    if score.average < SSIM_FLOOR:
        problems.append(f"{split.name}: SSIM {score.average:.4f} < {SSIM_FLOOR} (worst frame "
                        f"{score.worst_frame}: {score.minimum:.4f})")
    if score.frames != frames:
        problems.append(f"{split.name}: SSIM compared {score.frames} frames, not {frames}")
    return problems


def hls_problems(playlist: Path, duration_s: float) -> list[str]:
    """A well-formed VOD playlist whose segments exist, play on their own from a keyframe, and add
    up to ``duration_s`` within one frame."""
    lines = [line.strip() for line in playlist.read_text().splitlines() if line.strip()]
    name = playlist.name
    if not lines or lines[0] != "#EXTM3U":
        return [f"{name}: does not start with #EXTM3U: {lines[:1]}"]
    target = [int(line.split(":", 1)[1]) for line in lines if line.startswith("#EXT-X-TARGETDURATION:")]
    durations = [float(line.split(":", 1)[1].split(",")[0]) for line in lines if line.startswith("#EXTINF:")]
    segments = [line for line in lines if not line.startswith("#")]
    problems = [] if "#EXT-X-ENDLIST" in lines else [f"{name}: no #EXT-X-ENDLIST"]
    if len(target) != 1:
        problems.append(f"{name}: {len(target)} EXT-X-TARGETDURATION tags")
    elif any(round(d) > target[0] for d in durations):  # RFC 8216 4.3.3.1: rounded, at most it
        problems.append(f"{name}: EXTINF {max(durations)} above the target duration {target[0]}")
    if len(durations) != len(segments) or not segments:
        problems.append(f"{name}: {len(durations)} EXTINF for {len(segments)} segments")
    if abs(sum(durations) - duration_s) > FRAME_S:
        problems.append(f"{name}: the segments add up to {sum(durations):.4f} s, "
                        f"the source lasts {duration_s:.4f} s")
    for segment in segments:
        problems += _segment_problems(playlist.parent / segment)
    return problems


def _segment_problems(path: Path) -> list[str]:
    if not path.is_file() or path.stat().st_size == 0:
        return [f"{path.name}: listed but missing or empty"]
    played = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
                             "-f", "null", "-"], check=False, capture_output=True, text=True, timeout=120)
    if played.returncode != 0 or played.stderr.strip():
        return [f"{path.name}: does not play: {played.stderr.strip()[-500:]!r} (exit {played.returncode})"]
    first = _ffprobe(path, "-select_streams", "v:0", "-read_intervals", "%+#1",
                     "-show_entries", "packet=flags")
    if not first["packets"] or first["packets"][0]["flags"][0] != "K":
        return [f"{path.name}: does not start with a keyframe"]
    return []


def plan_problems(plan: dict[str, Any], source: Media, segment_s: float) -> list[str]:
    """The plan the agent reported, against the source's own packets: cuts at keyframes near
    multiples of ``segment_s``, every frame in exactly one segment."""
    cuts = [float(segment["start_s"]) for segment in plan["segments"]]
    video = source.video
    keys = [video.seconds(p.pts) for p in video.packets if p.key]
    pts = sorted(video.seconds(p.pts) for p in video.packets)
    problems = []
    if len(cuts) < 4:
        problems.append(f"plan: {len(cuts)} segments, the test needs at least 4: {plan}")
    for cut in cuts:
        if not any(abs(cut - key) < FRAME_S / 2 for key in keys):
            problems.append(f"plan: the cut at {cut} s is not a keyframe of the source ({keys})")
    bounds = [*cuts[1:], float("inf")]
    for i, (cut, end, segment) in enumerate(zip(cuts, bounds, plan["segments"], strict=True)):
        counted = sum(1 for t in pts if cut - FRAME_S / 2 <= t < end - FRAME_S / 2)
        if segment["frames"] != counted:
            problems.append(f"plan: segment {i} [{cut}, {end}) has {counted} frames, "
                            f"the plan says {segment['frames']}")
    if plan["frames"] != len(pts) or sum(s["frames"] for s in plan["segments"]) != len(pts):
        problems.append(f"plan: {plan['frames']} frames in all, the source has {len(pts)}")
    if abs(plan["duration_s"] - video.duration_s) > FRAME_S:
        problems.append(f"plan: lasts {plan['duration_s']} s, the source's video {video.duration_s:.4f} s")
    return problems


def seams(plan: dict[str, Any]) -> list[float]:
    """The plan's cut times, in seconds from the first cut (the outputs' first frame)."""
    cuts = [float(segment["start_s"]) for segment in plan["segments"]]
    return [cut - cuts[0] for cut in cuts]


def output_problems(media: Media, plan: dict[str, Any], source: Media) -> list[str]:
    """A stitched output on its own, without an unsplit one to compare with: one stream with a
    keyframe at every seam, every frame of the plan once, as long as the source within one frame,
    audio within 50 ms of the video."""
    problems = stream_problems(media, seams(plan)) + av_problems(media)
    if len(media.frames) != plan["frames"]:
        problems.append(f"{media.name}: {len(media.frames)} frames, the plan cut {plan['frames']}")
    if abs(media.video.duration_s - source.video.duration_s) > FRAME_S:
        problems.append(f"{media.name}: video lasts {media.video.duration_s:.4f} s, "
                        f"the source {source.video.duration_s:.4f} s")
    return problems
