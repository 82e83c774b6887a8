"""Typed, validated job specs: the one contract the master and the agent share.

``parse`` turns untrusted JSON into a frozen ``JobSpec`` or raises ``SpecError`` naming the
field, so the master can refuse a bad job with a precise message and the agent can build
FFmpeg's argv without checking anything again. Apart from the optional realpath check of
media-root paths (symlink escapes) it does no I/O.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit


class SpecError(ValueError):
    """A job spec is invalid; ``field`` is its path (``outputs[1].preset``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str]]:
        return (SpecError, (self.field, self.message))


# Preset values are written as an operator would write the overrides, so a preset is just
# a default set of overrides. h264 uses "veryfast" so a 1080p rung keeps up with real time
# on an ordinary host; every value can be overridden per output.
PRESETS: dict[str, dict[str, str]] = {
    "h264-1080p": {"video_codec": "libx264", "video_bitrate": "5000k", "size": "1920x1080",
                   "encoder_preset": "veryfast", "audio_codec": "aac", "audio_bitrate": "128k"},
    "h264-720p": {"video_codec": "libx264", "video_bitrate": "2800k", "size": "1280x720",
                  "encoder_preset": "veryfast", "audio_codec": "aac", "audio_bitrate": "128k"},
    "h264-480p": {"video_codec": "libx264", "video_bitrate": "1200k", "size": "854x480",
                  "encoder_preset": "veryfast", "audio_codec": "aac", "audio_bitrate": "96k"},
    "h264-360p": {"video_codec": "libx264", "video_bitrate": "700k", "size": "640x360",
                  "encoder_preset": "veryfast", "audio_codec": "aac", "audio_bitrate": "96k"},
    "h265-1080p": {"video_codec": "libx265", "video_bitrate": "3000k", "size": "1920x1080",
                   "encoder_preset": "fast", "audio_codec": "aac", "audio_bitrate": "128k"},
    "copy": {"video_codec": "copy", "audio_codec": "copy"},
}
OVERRIDES = ("video_codec", "video_bitrate", "size", "fps", "encoder_preset", "audio_codec",
             "audio_bitrate")
QUEUES = ("live", "default", "batch")
PRIORITIES = ("high", "medium", "low")
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                   "slower", "veryslow", "placebo")
COPY = "copy"

MAX_URL_CHARS = 2048
MAX_INTENT_CHARS = 200
MAX_REQUIRES = 32
MAX_OUTPUTS = 16
MAX_DURATION_S = 86400.0
MIN_DURATION_S = 0.001  # FFmpeg takes durations in decimal seconds; finer values round to zero
MIN_MEMORY_BYTES = 16 << 20  # below this FFmpeg is killed before it decodes a frame
MAX_MEMORY_BYTES = 1 << 50
DEFAULT_CPU_PERIOD_US = 100_000

TESTSRC_PREFIX = "testsrc://"
TESTSRC_DEFAULTS = {"duration": "10", "size": "1280x720", "rate": "30", "realtime": "0"}
INPUT_URL_SCHEMES = ("http", "https", "rtmp", "rtmps", "srt")
LIVE_INPUT_SCHEMES = ("rtmp", "rtmps", "srt")
OUTPUT_URL_SCHEMES = ("rtmp", "rtmps")
OUTPUT_EXTENSIONS = {".mp4": "file", ".mkv": "file", ".m3u8": "hls"}

_TOP_FIELDS = ("input", "outputs", "queue", "priority", "requires", "limits", "duration_s",
               "intent")
_OUTPUT_FIELDS = ("url", "preset", *OVERRIDES)
_LIMIT_FIELDS = ("cpu_max", "memory_max")
_VIDEO_ENCODING = ("video_bitrate", "size", "fps", "encoder_preset")
_AUDIO_ENCODING = ("audio_bitrate",)

# Validation patterns are used with fullmatch: a "$" anchor would accept a trailing newline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CAPABILITY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CODEC = re.compile(r"[a-z0-9_]{1,32}")
_BITRATE = re.compile(
    r"([1-9][0-9]{2,9})|([1-9][0-9]{0,6})[kK]|([1-9][0-9]{0,3}(?:\.[0-9]{1,3})?)M")
_SIZE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_CPU_MAX = re.compile(r"(max|[0-9]{1,10})(?: ([0-9]{1,7}))?")
_MEMORY = re.compile(r"([0-9]{1,16})([kKmMgGtT]?)")
_MEMORY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Limits:
    """cgroup v2 values, already normalised to what the kernel files accept."""

    cpu_max: str | None = None
    memory_max: str | None = None


@dataclass(frozen=True)
class Output:
    """One rung: where it goes, what kind of muxer, and the preset merged with its overrides."""

    url: str
    kind: str
    preset: str
    settings: Mapping[str, str] = field(hash=False)

    @property
    def path(self) -> str | None:
        """The local file path for file and HLS outputs, None for a push URL."""
        return None if self.kind == "rtmp" else local_path(self.url)


@dataclass(frozen=True)
class GeneratedSource:
    """The parameters of a ``testsrc://`` input, with defaults filled in."""

    duration_s: float
    size: str
    rate: str
    realtime: bool = False  # paced at 1x like a camera: for soak tests and live rehearsals


@dataclass(frozen=True)
class JobSpec:
    """A validated job; build one with ``parse`` so every invariant holds."""

    input: str
    input_kind: str
    outputs: tuple[Output, ...]
    queue: str = "default"
    priority: str = "medium"
    requires: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    duration_s: float | None = None
    intent: str | None = None

    @property
    def is_live(self) -> bool:
        """Live jobs run until the stream ends or a human cancels them."""
        return (self.input_kind == "url" and _scheme(self.input) in LIVE_INPUT_SCHEMES) or any(
            out.kind == "rtmp" for out in self.outputs)

    def capabilities(self) -> tuple[str, ...]:
        """Everything a node must have reported to run this job, for the master's matching."""
        needed = set(self.requires)
        for out in self.outputs:
            for key in ("video_codec", "audio_codec"):
                codec = out.settings.get(key)
                if codec and codec != COPY:
                    needed.add(codec)
        return tuple(sorted(needed))

    def expected_duration_s(self) -> float | None:
        """The output length when it is knowable without probing, for progress percentages."""
        known = []
        if self.input_kind == "testsrc":
            known.append(testsrc_params(self.input).duration_s)
        if self.duration_s is not None:
            known.append(self.duration_s)
        return min(known) if known else None

    def to_dict(self) -> dict[str, object]:
        """The canonical JSON form: every field present, overrides only where they differ."""
        return {
            "input": self.input,
            "outputs": [_output_to_dict(out) for out in self.outputs],
            "queue": self.queue,
            "priority": self.priority,
            "requires": list(self.requires),
            "limits": {"cpu_max": self.limits.cpu_max, "memory_max": self.limits.memory_max},
            "duration_s": self.duration_s,
            "intent": self.intent,
        }


def _output_to_dict(out: Output) -> dict[str, object]:
    doc: dict[str, object] = {"url": out.url, "preset": out.preset}
    preset = PRESETS[out.preset]
    for key in OVERRIDES:
        if key in out.settings and out.settings[key] != preset.get(key):
            doc[key] = out.settings[key]
    return doc


# --- public helpers shared with the argv builder -------------------------------------------


def local_path(url: str) -> str:
    """The filesystem path of a ``file:///`` URL or absolute path, normalised.

    A file URL is taken literally after ``file://`` (no percent-decoding), so what was
    validated is exactly what FFmpeg opens.
    """
    return _normalise(url.removeprefix("file://"))


def _normalise(path: str) -> str:
    """normpath, plus collapsing a leading ``//`` (the same directory as ``/`` on Linux)."""
    if path.startswith("/"):
        path = "/" + path.lstrip("/")
    return os.path.normpath(path)


def testsrc_params(url: str) -> GeneratedSource:
    """Parse ``testsrc://?duration=&size=&rate=&realtime=``; raises SpecError naming ``input``."""
    rest = url[len(TESTSRC_PREFIX):] if url.startswith(TESTSRC_PREFIX) else None
    if rest is None or (rest and not rest.startswith("?")):
        raise SpecError("input", "must look like testsrc://?duration=10&size=1280x720&rate=30")
    try:
        pairs = parse_qsl(rest[1:], keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise SpecError("input", "testsrc query must be key=value pairs joined by &") from None
    values = dict(TESTSRC_DEFAULTS)
    seen: set[str] = set()
    for key, value in pairs:
        if key not in TESTSRC_DEFAULTS:
            raise SpecError("input", f"unknown testsrc parameter {key!r}; "
                                     f"use {', '.join(TESTSRC_DEFAULTS)}")
        if key in seen:
            raise SpecError("input", f"testsrc parameter {key!r} is given twice")
        seen.add(key)
        values[key] = value
    duration = _duration(values["duration"], "input", "testsrc duration")
    size = _size(values["size"], "input")
    rate = _fps(values["rate"], "input")
    if values["realtime"] not in ("0", "1"):
        raise SpecError("input", "testsrc realtime must be 0 or 1")
    return GeneratedSource(duration_s=duration, size=size, rate=rate,
                           realtime=values["realtime"] == "1")


def bitrate_bps(value: str) -> int:
    """Bits per second of a validated bitrate string ("900k", "4M", "128000")."""
    match = _BITRATE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a bitrate: {value!r}")
    plain, kilo, mega = match.groups()
    if plain:
        return int(plain)
    if kilo:
        return int(kilo) * 1000
    return round(float(mega) * 1_000_000)


def format_number(value: float) -> str:
    """Decimal text FFmpeg accepts for seconds and rates (never exponent notation)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


# --- parse -----------------------------------------------------------------------------------


def parse(obj: object, media_roots: Sequence[str], *, check_filesystem: bool = True) -> JobSpec:
    """Validate untrusted JSON into a JobSpec, or raise SpecError naming the first bad field.

    ``media_roots`` are absolute directories that every local input and output must stay
    inside. With ``check_filesystem`` the path is also resolved through symlinks, for roots
    that exist on this host; elsewhere only the lexical check applies.
    """
    roots = _normalise_roots(media_roots)
    spec = _object(obj, "spec")
    _reject_unknown(spec, _TOP_FIELDS, "")
    for name in ("input", "outputs"):
        if name not in spec:
            raise SpecError(name, "is required")
    containment = _Containment(roots, check_filesystem)
    source, input_kind = _input(spec["input"], containment)
    outputs = _outputs(spec["outputs"], containment, source)
    return JobSpec(
        input=source,
        input_kind=input_kind,
        outputs=outputs,
        queue=_choice(spec.get("queue", "default"), "queue", QUEUES),
        priority=_choice(spec.get("priority", "medium"), "priority", PRIORITIES),
        requires=_requires(spec.get("requires", [])),
        limits=_limits(spec.get("limits")),
        duration_s=_optional_duration(spec.get("duration_s"), "duration_s"),
        intent=_intent(spec.get("intent")),
    )


def _normalise_roots(media_roots: Sequence[str]) -> tuple[str, ...]:
    if isinstance(media_roots, str):
        raise TypeError("media_roots must be a sequence of paths, not one string")
    for root in media_roots:
        if not PurePosixPath(root).is_absolute():
            raise ValueError(f"media root {root!r} must be an absolute path")
    return tuple(os.path.normpath(root) for root in media_roots)


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise SpecError(where, "must be a JSON object")
    for key in value:
        if not isinstance(key, str):
            raise SpecError(where, f"has a non-string key {key!r}")
    return value


def _reject_unknown(doc: Mapping[str, object], allowed: Sequence[str], prefix: str) -> None:
    for key in doc:
        if not key:
            raise SpecError(prefix.rstrip(".") or "spec", "has a field with an empty name")
        if key not in allowed:
            raise SpecError(f"{prefix}{key}", f"is not a known field; expected one of "
                                              f"{', '.join(allowed)}")


def _text(value: object, where: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise SpecError(where, "must be a string")
    if not value:
        raise SpecError(where, "must not be empty")
    if len(value) > max_chars:
        raise SpecError(where, f"must be at most {max_chars} characters")
    if _CONTROL.search(value):
        raise SpecError(where, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(where, "must be valid UTF-8 text") from None
    return value


def _choice(value: object, where: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(where, f"must be one of {', '.join(choices)}")
    return value


def _number(value: object, where: str) -> float:
    """JSON numbers only: bool is not a number, NaN and infinities are not numbers either."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(where, "must be a number")
    if isinstance(value, int):  # huge ints can't become floats; they fail range checks anyway
        if abs(value) <= 1 << 53:
            return float(value)
        return math.inf if value > 0 else -math.inf
    if not math.isfinite(value):
        raise SpecError(where, "must be a finite number")
    return value


def _duration(value: object, where: str, what: str = "duration") -> float:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise SpecError(where, f"{what} must be a number of seconds, e.g. 10 or 2.5")
        number = float(value)
    else:
        number = _number(value, where)
    if not MIN_DURATION_S <= number <= MAX_DURATION_S:
        raise SpecError(where, f"{what} must be between {format_number(MIN_DURATION_S)} and "
                               f"{format_number(MAX_DURATION_S)} seconds")
    return number


def _optional_duration(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise SpecError(where, "must be a number of seconds or null")
    return _duration(value, where)


def _intent(value: object) -> str | None:
    return None if value is None else _text(value, "intent", MAX_INTENT_CHARS)


def _requires(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError("requires", "must be a list of capability names")
    if len(value) > MAX_REQUIRES:
        raise SpecError("requires", f"must list at most {MAX_REQUIRES} capabilities")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _CAPABILITY.fullmatch(item):
            raise SpecError(f"requires[{index}]", "must be a capability name such as "
                                                  "h264_nvenc (letters, digits, _ . -, 1-64)")
    return tuple(sorted(set(value)))


# --- limits ------------------------------------------------------------------------------------


def _limits(value: object) -> Limits:
    if value is None:
        return Limits()
    doc = _object(value, "limits")
    _reject_unknown(doc, _LIMIT_FIELDS, "limits.")
    return Limits(cpu_max=_cpu_max(doc.get("cpu_max")),
                  memory_max=_memory_max(doc.get("memory_max")))


def _cpu_max(value: object) -> str | None:
    """cgroup v2 ``cpu.max``: quota (or max) and period in microseconds."""
    if value is None:
        return None
    usage = 'must be cgroup v2 cpu.max syntax such as "max 100000" or "50000 100000"'
    if not isinstance(value, str):
        raise SpecError("limits.cpu_max", usage)
    match = _CPU_MAX.fullmatch(value)
    if match is None:
        raise SpecError("limits.cpu_max", usage)
    quota, period = match.group(1), int(match.group(2) or DEFAULT_CPU_PERIOD_US)
    if not 1000 <= period <= 1_000_000:
        raise SpecError("limits.cpu_max", "period must be between 1000 and 1000000 microseconds")
    if quota != "max" and int(quota) < 1000:
        raise SpecError("limits.cpu_max", "quota must be at least 1000 microseconds or max")
    return f"{quota if quota == 'max' else int(quota)} {period}"


def _memory_max(value: object) -> str | None:
    """cgroup v2 ``memory.max`` in bytes, or ``max``; K/M/G/T suffixes are powers of 1024."""
    if value is None:
        return None
    usage = 'must be bytes or a size such as "512M", "2G" or "max"'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError("limits.memory_max", usage)
    if value == "max":
        return "max"
    match = _MEMORY.fullmatch(str(value))
    if match is None:
        raise SpecError("limits.memory_max", usage)
    size = int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
    if not MIN_MEMORY_BYTES <= size <= MAX_MEMORY_BYTES:
        raise SpecError("limits.memory_max", "must be at least 16M (FFmpeg needs that much "
                                             "to start) and at most 1024T")
    return str(size)


# --- media-root containment -----------------------------------------------------------------


class _Containment:
    """Decides whether a local path stays inside the media roots.

    The lexical check always applies. The realpath check applies to roots that exist on
    this host, so the master can validate paths on a node-only mount it does not have.
    """

    def __init__(self, roots: tuple[str, ...], check_filesystem: bool) -> None:
        self.roots = roots
        self.check_filesystem = check_filesystem

    def check(self, path: str, where: str) -> str:
        if not path.startswith("/"):
            raise SpecError(where, "must be an absolute path")
        if ".." in path.split("/"):
            raise SpecError(where, "must not contain '..' components")
        normal = _normalise(path)
        if not self.roots:
            raise SpecError(where, "local files are not allowed: no media roots are configured")
        lexical = [root for root in self.roots if _strictly_inside(normal, root)]
        if not lexical:
            raise SpecError(where, f"path escapes the media roots {', '.join(self.roots)}")
        if self.check_filesystem and not self._resolves_inside(normal, lexical):
            raise SpecError(where, f"path escapes the media roots {', '.join(self.roots)} "
                                   "through a symlink")
        return normal

    def _resolves_inside(self, normal: str, lexical: list[str]) -> bool:
        try:
            if not all(Path(root).exists() for root in lexical):
                return True  # the root isn't mounted here: only the lexical check can apply
            real = os.path.realpath(normal)
            real_roots = [os.path.realpath(root) for root in self.roots if Path(root).exists()]
        except (OSError, ValueError):
            return False
        return any(_strictly_inside(real, root) for root in real_roots)


def _strictly_inside(path: str, root: str) -> bool:
    return path != root and os.path.commonpath([path, root]) == root


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1) if match else None


def _local_file(url: str, where: str, containment: _Containment) -> str:
    """Check a ``file:///`` URL or absolute path and return its normalised path."""
    if url.startswith("file:") and not url.startswith("file:///"):
        raise SpecError(where, "a file URL must look like file:///absolute/path")
    return containment.check(url.removeprefix("file://"), where)


def _network_url(url: str, where: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SpecError(where, "is not a valid URL") from None
    if not parts.hostname:
        raise SpecError(where, f"a {parts.scheme}:// URL must name a host")
    if " " in url:
        raise SpecError(where, "must not contain spaces (percent-encode them)")


# --- input ---------------------------------------------------------------------------------------


def _input(value: object, containment: _Containment) -> tuple[str, str]:
    url = _text(value, "input", MAX_URL_CHARS)
    scheme = _scheme(url)
    if scheme == "testsrc":
        testsrc_params(url)
        return url, "testsrc"
    if scheme in INPUT_URL_SCHEMES:
        _network_url(url, "input")
        return url, "url"
    if scheme is None or scheme == "file":
        _local_file(url, "input", containment)
        return url, "file"
    raise SpecError("input", f"scheme {scheme} is not allowed; use a file under a media root "
                             "(file:///… or an absolute path), http(s)://, rtmp(s)://, srt:// "
                             "or testsrc://")


# --- outputs -------------------------------------------------------------------------------------


def _outputs(value: object, containment: _Containment, source: str) -> tuple[Output, ...]:
    if not isinstance(value, list):
        raise SpecError("outputs", "must be a list of outputs")
    if not value:
        raise SpecError("outputs", "must contain at least one output")
    if len(value) > MAX_OUTPUTS:
        raise SpecError("outputs", f"must contain at most {MAX_OUTPUTS} outputs")
    source_path = local_path(source) if _scheme(source) in (None, "file") else None
    targets: dict[str, int] = {}
    outputs = []
    for index, item in enumerate(value):
        out = _output(item, f"outputs[{index}]", containment)
        target = out.path or out.url
        if target in targets:
            raise SpecError(f"outputs[{index}].url", f"duplicates outputs[{targets[target]}].url")
        if target == source_path:
            raise SpecError(f"outputs[{index}].url", "is the input file; it would be overwritten")
        targets[target] = index
        outputs.append(out)
    return tuple(outputs)


def _output(value: object, where: str, containment: _Containment) -> Output:
    doc = _object(value, where)
    _reject_unknown(doc, _OUTPUT_FIELDS, f"{where}.")
    if "url" not in doc:
        raise SpecError(f"{where}.url", "is required")
    if "preset" not in doc:
        raise SpecError(f"{where}.preset", f"is required; one of {', '.join(PRESETS)}")
    url, kind = _output_url(doc["url"], f"{where}.url", containment)
    preset = _choice(doc["preset"], f"{where}.preset", tuple(PRESETS))
    overrides = {key: _override(key, doc[key], f"{where}.{key}")
                 for key in OVERRIDES if key in doc}
    return Output(url=url, kind=kind, preset=preset,
                  settings=MappingProxyType(_merge(preset, overrides, where)))


def _output_url(value: object, where: str, containment: _Containment) -> tuple[str, str]:
    url = _text(value, where, MAX_URL_CHARS)
    scheme = _scheme(url)
    if scheme in OUTPUT_URL_SCHEMES:
        _network_url(url, where)
        if urlsplit(url).path.strip("/") == "":
            raise SpecError(where, f"a {scheme}:// push URL needs an application and stream "
                                   "path, e.g. rtmp://host/live/stream")
        return url, "rtmp"
    if scheme is None or scheme == "file":
        path = _local_file(url, where, containment)
        extension = PurePosixPath(path).suffix.lower()
        if extension not in OUTPUT_EXTENSIONS:
            raise SpecError(where, "a file output must end in .mp4, .mkv or .m3u8 (HLS)")
        return url, OUTPUT_EXTENSIONS[extension]
    raise SpecError(where, f"scheme {scheme} is not allowed; use a file under a media root "
                           "(file:///… or an absolute path ending .mp4, .mkv or .m3u8) or "
                           "rtmp(s)://host/app/stream")


def _merge(preset: str, overrides: dict[str, str], where: str) -> dict[str, str]:
    """Overrides win over the preset; a stream copy drops (and refuses) encoding settings."""
    settings = {**PRESETS[preset], **overrides}
    for codec_key, encoding_keys in (("video_codec", _VIDEO_ENCODING),
                                     ("audio_codec", _AUDIO_ENCODING)):
        if settings.get(codec_key) != COPY:
            continue
        for key in encoding_keys:
            if key in overrides:
                stream = codec_key.split("_")[0]
                raise SpecError(f"{where}.{key}",
                                f"cannot be combined with a {stream} stream copy")
            settings.pop(key, None)
    return settings


def _override(key: str, value: object, where: str) -> str:
    if key in ("video_codec", "audio_codec"):
        if not isinstance(value, str) or not _CODEC.fullmatch(value):
            raise SpecError(where, "must be an FFmpeg encoder name such as libx264, aac or copy "
                                   "(a-z, 0-9, _)")
        return value
    if key in ("video_bitrate", "audio_bitrate"):
        return _bitrate(value, where)
    if key == "size":
        return _size(value, where)
    if key == "fps":
        return _fps(value, where)
    return _choice(value, where, ENCODER_PRESETS)


def _bitrate(value: object, where: str) -> str:
    usage = "must be a bitrate such as 900k, 4M or 128000 (between 1k and 500M)"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _BITRATE.fullmatch(value):
        raise SpecError(where, usage)
    if not 1000 <= bitrate_bps(value) <= 500_000_000:
        raise SpecError(where, usage)
    return value


def _size(value: object, where: str) -> str:
    usage = "must be WIDTHxHEIGHT with even numbers between 16 and 8192, e.g. 1280x720"
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(where, usage)
    width, height = int(match.group(1)), int(match.group(2))
    for dim in (width, height):
        if dim % 2 or not 16 <= dim <= 8192:
            raise SpecError(where, usage)
    return f"{width}x{height}"


def _fps(value: object, where: str) -> str:
    usage = "must be a frame rate between 1 and 240, e.g. 30 or 29.97"
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise SpecError(where, usage)
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value) if 1 <= value <= 240 else 0.0  # also turns NaN away
    else:
        raise SpecError(where, usage)
    if not 1 <= number <= 240:
        raise SpecError(where, usage)
    return format_number(number)
