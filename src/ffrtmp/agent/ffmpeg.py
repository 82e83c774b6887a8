"""FFmpeg as the farm uses it: node capabilities and input durations.

The argv comes from ``ffrtmp.agent.argv``, staged outputs from ``ffrtmp.agent.outputs``, and
``ffrtmp.progress`` reads the ``-progress`` file.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ffrtmp.progress import finite_float

HARDWARE_MARKERS = ("nvenc", "qsv", "vaapi", "amf", "v4l2m2m", "videotoolbox", "mediacodec")


# --- capabilities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What this node can run; the master matches a job's ``capabilities()`` against it."""

    ffmpeg_version: str
    encoders: tuple[str, ...]
    hwaccels: tuple[str, ...]


def discover_capabilities(ffmpeg: str = "ffmpeg", *, timeout_s: float = 10,
                          list_timeout_s: float = 60) -> Capabilities:
    """Ask FFmpeg what it can do, keeping hardware only where it really works.

    A build lists NVENC or VAAPI whether or not the host has the device, so each hardware
    encoder and hwaccel is kept only if a one-frame encode (or device open) succeeds within
    ``timeout_s``. The listings themselves are required, so they get the patient
    ``list_timeout_s``: a host busy at boot slows them, and a short bound turned that into an
    agent that exits. Raises FileNotFoundError when ``ffmpeg`` is missing, and
    CalledProcessError or TimeoutExpired when it can't even list what it has.
    """
    version = _ffmpeg_version(_run([ffmpeg, "-hide_banner", "-version"], list_timeout_s))
    encoders = _parse_encoders(_run([ffmpeg, "-hide_banner", "-encoders"], list_timeout_s))
    hwaccels = _parse_hwaccels(_run([ffmpeg, "-hide_banner", "-hwaccels"], list_timeout_s))
    software = [name for name in encoders if not is_hardware_encoder(name)]
    hardware = [name for name in encoders if is_hardware_encoder(name)]
    probes = [_encoder_probe(ffmpeg, name) for name in hardware]
    probes += [_hwaccel_probe(ffmpeg, name) for name in hwaccels]
    with ThreadPoolExecutor(max_workers=4) as pool:  # probes are independent processes
        works = list(pool.map(lambda argv: _succeeds(argv, timeout_s), probes))
    candidates = hardware + hwaccels
    working = {name for name, ok in zip(candidates, works, strict=True) if ok}
    working_hw = [name for name in hardware if name in working]
    working_accels = [name for name in hwaccels if name in working]
    return Capabilities(ffmpeg_version=version,
                        encoders=tuple(sorted({*software, *working_hw})),
                        hwaccels=tuple(sorted(set(working_accels))))


def is_hardware_encoder(name: str) -> bool:
    return any(marker in name for marker in HARDWARE_MARKERS)


def _run(argv: list[str], timeout_s: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=timeout_s, check=True, stdin=subprocess.DEVNULL)
    return done.stdout


def _succeeds(argv: list[str], timeout_s: float) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _ffmpeg_version(text: str) -> str:
    match = re.search(r"version (\S+)", text)
    return match.group(1) if match else "unknown"


def _parse_encoders(text: str) -> list[str]:
    """Video and audio encoder names from ``-encoders`` (subtitle encoders are no capability)."""
    names = []
    for line in text.splitlines():
        match = re.match(r"^ ([VA])[A-Z.]{5} (\S+)", line)
        if match and match.group(2) != "=":
            names.append(match.group(2))
    return names


def _parse_hwaccels(text: str) -> list[str]:
    lines = text.splitlines()
    if "Hardware acceleration methods:" in lines:
        lines = lines[lines.index("Hardware acceleration methods:") + 1:]
    return [line.strip() for line in lines if re.fullmatch(r"[a-z0-9_]+", line.strip())]


def _encoder_probe(ffmpeg: str, encoder: str) -> list[str]:
    # 320x240 rather than smaller: several hardware encoders refuse very small frames.
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    upload: list[str] = []
    if "vaapi" in encoder:  # VAAPI encoders only take frames already on the device
        argv += ["-init_hw_device", "vaapi=probe", "-filter_hw_device", "probe"]
        upload = ["-vf", "format=nv12,hwupload"]
    return [*argv, "-f", "lavfi", "-i", "nullsrc=size=320x240:rate=25", "-frames:v", "1",
            *upload, "-c:v", encoder, "-f", "null", "-"]


def _hwaccel_probe(ffmpeg: str, hwaccel: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-init_hw_device", hwaccel,
            "-f", "lavfi", "-i", "nullsrc=size=64x64:rate=25", "-frames:v", "1", "-f", "null", "-"]


# --- probing -----------------------------------------------------------------------------------


def probe_duration_s(path: str, ffprobe: str = "ffprobe", *, timeout_s: float = 30) -> float | None:
    """The container duration, for progress percentages of file inputs; None when unknown.

    Raises FileNotFoundError when ``ffprobe`` is missing, so a broken node isn't mistaken
    for an unreadable file.
    """
    out = _ffprobe([ffprobe, "-v", "error", "-show_entries", "format=duration",
                    "-of", "default=noprint_wrappers=1:nokey=1", "-i", path], timeout_s)
    duration = finite_float(out.strip()) if out is not None else None
    return duration if duration is not None and duration > 0 else None


def probe_video_size(path: str, ffprobe: str = "ffprobe", *, timeout_s: float = 30) -> str | None:
    """The first video stream's ``WxH`` as ffprobe reports it, for the delivered outputs."""
    out = _ffprobe([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                    "stream=width,height", "-of", "csv=s=x:p=0", "-i", path], timeout_s)
    size = (out or "").strip().splitlines()[:1]
    return size[0] if size and re.fullmatch(r"\d+x\d+", size[0]) else None


def _ffprobe(argv: list[str], timeout_s: float) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None
