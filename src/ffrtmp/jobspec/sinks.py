"""Where a job writes: a file, an HLS playlist, or a live push, each with its encoding.

A new kind of output is a new class here, its rule in ``parse_sink``, and its argv rule in
the agent's argv builder; nothing else asks what kind an output is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from ffrtmp.jobspec.encoding import AudioSettings, VideoSettings, settings_text
from ffrtmp.jobspec.paths import Containment, has_query, network_url, remote_path, scheme
from ffrtmp.validation import FieldError

OUTPUT_URL_SCHEMES = ("rtmp", "rtmps")
UPLOAD_SCHEMES = ("http", "https", "store")  # written in the work dir, then uploaded
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska"}  # FFmpeg's muxer for each file extension
HLS_EXTENSION = ".m3u8"


@dataclass(frozen=True)
class _Rung:
    pushes: ClassVar[bool] = False  # a live push, which must be fed in real time
    url: str  # as the spec gave it
    preset: str
    video: VideoSettings
    audio: AudioSettings

    @property
    def settings(self) -> Mapping[str, str]:
        """The preset merged with the overrides, as the spec's JSON writes them."""
        return settings_text(self.video, self.audio)


@dataclass(frozen=True)
class FileSink(_Rung):
    """A finished file: staged under a hidden name until the job succeeds.

    An uploaded output (``upload`` set) is written in the work dir's outbox first: its
    ``path`` is relative to the outbox until the agent places it (``ffrtmp.agent.localize``).
    """

    kind: ClassVar[str] = "file"
    path: str  # resolved and normalised; relative to the outbox when uploaded
    container: str  # the muxer: mp4 or matroska
    upload: str | None = None  # the http(s) or store URL it is delivered to after the encode

    def staged(self, live: bool) -> bool:
        return True


@dataclass(frozen=True)
class HlsSink(_Rung):
    """An HLS playlist; its segments sit beside it."""

    kind: ClassVar[str] = "hls"
    path: str  # the playlist; relative to the outbox when uploaded, like FileSink's
    upload: str | None = None  # the playlist's URL; segments go beside it, the playlist last

    def staged(self, live: bool) -> bool:
        """A live event playlist is followed while it grows; a VOD one appears when done."""
        return not live


@dataclass(frozen=True)
class PushSink(_Rung):
    """A live push to an RTMP server."""

    kind: ClassVar[str] = "rtmp"
    pushes: ClassVar[bool] = True

    @property
    def path(self) -> str | None:
        return None

    @property
    def upload(self) -> str | None:
        return None

    def staged(self, live: bool) -> bool:
        return False


Sink = FileSink | HlsSink | PushSink


MakeSink = Callable[[str, VideoSettings, AudioSettings], Sink]  # preset, video, audio


def parse_sink(url: str, where: str, containment: Containment, index: int = 0) -> MakeSink:
    """Check where an output goes; the result builds the sink once its encoding is known."""
    kind = scheme(url)
    if kind in UPLOAD_SCHEMES:
        return _upload_sink(url, where, index)
    if kind in OUTPUT_URL_SCHEMES:
        if network_url(url, where).strip("/") == "":
            raise FieldError(where, f"a {kind}:// push URL needs an application and stream "
                                    "path, e.g. rtmp://host/live/stream")
        return lambda preset, video, audio: PushSink(url, preset, video, audio)
    if kind is None or kind == "file":
        return _file_sink(url, containment.local_file(url, where), where, None)
    raise FieldError(where, f"scheme {kind} is not allowed; use a file under a media root "
                            "(file:///… or an absolute path ending .mp4, .mkv or .m3u8), "
                            "store:///… or http(s)://… (uploaded), or rtmp(s)://host/app/stream")


def _upload_sink(url: str, where: str, index: int) -> MakeSink:
    """An output written into the outbox as ``<index>/<name>`` and uploaded to ``url``."""
    name = remote_path(url, where).rsplit("/", 1)[-1]
    if not name:
        raise FieldError(where, "must name a file, not a directory")
    if has_query(url) and name.lower().endswith(HLS_EXTENSION):
        raise FieldError(where, "an HLS output cannot go to a presigned URL (each segment is its "
                                "own object); use store:/// or a WebDAV URL without a query")
    return _file_sink(url, f"{index}/{name}", where, url)


def _file_sink(url: str, path: str, where: str, upload: str | None) -> MakeSink:
    extension = PurePosixPath(path).suffix.lower()
    if extension == HLS_EXTENSION:
        return lambda preset, video, audio: HlsSink(url, preset, video, audio, path, upload)
    if extension in CONTAINERS:
        container = CONTAINERS[extension]
        return lambda preset, video, audio: FileSink(url, preset, video, audio, path,
                                                     container, upload)
    raise FieldError(where, "a file output must end in .mp4, .mkv or .m3u8 (HLS)")
