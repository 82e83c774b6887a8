"""What a job reads: a file, a URL, or a generated test pattern, each parsed once.

A new kind of input is a new class here, its rule in ``parse_source``, and its argv rule in
the agent's argv builder; nothing else asks what kind an input is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qsl

from ffrtmp.jobspec import numbers
from ffrtmp.jobspec.paths import Containment, network_url, remote_path, scheme
from ffrtmp.validation import FieldError

TESTSRC_PREFIX = "testsrc://"
TESTSRC_DEFAULTS = {"duration": "10", "size": "1280x720", "rate": "30", "realtime": "0"}
INPUT_URL_SCHEMES = ("http", "https", "rtmp", "rtmps", "srt")
LIVE_INPUT_SCHEMES = ("rtmp", "rtmps", "srt")
FILE_URL_SCHEMES = ("http", "https", "store")  # remote files: staged into the work dir, or streamed
STAGE, STREAM = "stage", "stream"  # the spec's input_fetch: who reads a remote file
INPUT_FETCH = (STAGE, STREAM)
PLAYLIST_EXTENSION = ".m3u8"  # a playlist names other objects: FFmpeg must read it itself


class _Input:
    """What the rest of the farm asks of any input; each kind answers for itself."""

    @property
    def local_path(self) -> str | None:
        """The file FFmpeg opens here (to probe, and never to overwrite), if any."""
        return None

    @property
    def is_live(self) -> bool:
        return False

    @property
    def known_duration_s(self) -> float | None:
        """The length when it is knowable without probing."""
        return None


@dataclass(frozen=True)
class FileSource(_Input):
    """A file under a media root."""

    kind: ClassVar[str] = "file"
    url: str  # as the spec gave it
    path: str  # resolved and normalised: what FFmpeg opens

    @property
    def local_path(self) -> str | None:
        return self.path


@dataclass(frozen=True)
class UrlSource(_Input):
    """A network input FFmpeg reads itself; rtmp(s) and srt streams are live."""

    kind: ClassVar[str] = "url"
    url: str
    scheme: str

    @property
    def is_live(self) -> bool:
        return self.scheme in LIVE_INPUT_SCHEMES


@dataclass(frozen=True)
class RemoteFile(_Input):
    """An http(s) or store file that the agent downloads into the work dir before the encode.

    Downloading is transport (resumed with range requests, retried, never re-encoding), and
    FFmpeg then reads a local file: seeks are free, and no URL reaches FFmpeg's log.
    """

    kind: ClassVar[str] = "remote"
    url: str
    name: str  # the object's file name: the staged copy keeps it (and its extension)


@dataclass(frozen=True)
class GeneratedSource(_Input):
    """The parameters of a ``testsrc://`` input, with defaults filled in."""

    kind: ClassVar[str] = "testsrc"
    duration_s: float
    size: str  # normalised WIDTHxHEIGHT, as the lavfi filter takes it
    rate: str  # normalised frame rate text, as the lavfi filter takes it
    realtime: bool = False  # paced at 1x like a camera: for soak tests and live rehearsals
    url: str = TESTSRC_PREFIX

    @property
    def known_duration_s(self) -> float | None:
        return self.duration_s

    @property
    def fps(self) -> float:
        return float(self.rate)


Source = FileSource | UrlSource | RemoteFile | GeneratedSource


def parse_source(url: str, containment: Containment, fetch: str = STAGE) -> Source:
    kind = scheme(url)
    if kind == "testsrc":
        return generated_source(url)
    if kind in FILE_URL_SCHEMES:
        return _remote_source(url, kind, fetch)
    if kind in INPUT_URL_SCHEMES:
        network_url(url, "input")
        return UrlSource(url=url, scheme=kind)
    if kind is None or kind == "file":
        return FileSource(url=url, path=containment.local_file(url, "input"))
    raise FieldError("input", f"scheme {kind} is not allowed; use a file under a media root "
                              "(file:///… or an absolute path), store:///…, http(s)://, rtmp(s)://, "
                              "srt:// or testsrc://")


def _remote_source(url: str, kind: str, fetch: str) -> Source:
    name = remote_path(url, "input").rsplit("/", 1)[-1]
    if fetch == STREAM or name.lower().endswith(PLAYLIST_EXTENSION):
        if kind == "store":  # the store asks for credentials, which never go on FFmpeg's argv
            raise FieldError("input_fetch", "a store:/// input is staged by the agent; FFmpeg "
                                            "cannot read the store itself (use stage, the default)")
        return UrlSource(url=url, scheme=kind)
    if not name:
        raise FieldError("input", "must name a file, not a directory")
    return RemoteFile(url=url, name=name)


def generated_source(url: str) -> GeneratedSource:
    """Parse ``testsrc://?duration=&size=&rate=&realtime=``; errors name ``input``."""
    values = _testsrc_query(url)
    duration = numbers.duration(values["duration"], "input", "testsrc duration")
    size = numbers.size(values["size"], "input")
    rate = numbers.fps(values["rate"], "input")
    if values["realtime"] not in ("0", "1"):
        raise FieldError("input", "testsrc realtime must be 0 or 1")
    return GeneratedSource(duration_s=duration, size=numbers.format_size(size),
                           rate=numbers.format_number(rate), realtime=values["realtime"] == "1",
                           url=url)


def _testsrc_query(url: str) -> dict[str, str]:
    rest = url[len(TESTSRC_PREFIX):] if url.startswith(TESTSRC_PREFIX) else None
    if rest is None or (rest and not rest.startswith("?")):
        raise FieldError("input", "must look like testsrc://?duration=10&size=1280x720&rate=30")
    try:
        pairs = parse_qsl(rest[1:], keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise FieldError("input", "testsrc query must be key=value pairs joined by &") from None
    values = dict(TESTSRC_DEFAULTS)
    seen: set[str] = set()
    for key, value in pairs:
        if key not in TESTSRC_DEFAULTS:
            raise FieldError("input", f"unknown testsrc parameter {key!r}; "
                                      f"use {', '.join(TESTSRC_DEFAULTS)}")
        if key in seen:
            raise FieldError("input", f"testsrc parameter {key!r} is given twice")
        seen.add(key)
        values[key] = value
    return values
