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
from ffrtmp.jobspec.paths import Containment, network_url, scheme
from ffrtmp.validation import FieldError

OUTPUT_URL_SCHEMES = ("rtmp", "rtmps")
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
    """A finished file: staged under a hidden name until the job succeeds."""

    kind: ClassVar[str] = "file"
    path: str  # resolved and normalised
    container: str  # the muxer: mp4 or matroska

    def staged(self, live: bool) -> bool:
        return True


@dataclass(frozen=True)
class HlsSink(_Rung):
    """An HLS playlist; its segments sit beside it."""

    kind: ClassVar[str] = "hls"
    path: str

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

    def staged(self, live: bool) -> bool:
        return False


Sink = FileSink | HlsSink | PushSink


MakeSink = Callable[[str, VideoSettings, AudioSettings], Sink]  # preset, video, audio


def parse_sink(url: str, where: str, containment: Containment) -> MakeSink:
    """Check where an output goes; the result builds the sink once its encoding is known."""
    kind = scheme(url)
    if kind in OUTPUT_URL_SCHEMES:
        if network_url(url, where).strip("/") == "":
            raise FieldError(where, f"a {kind}:// push URL needs an application and stream "
                                    "path, e.g. rtmp://host/live/stream")
        return lambda preset, video, audio: PushSink(url, preset, video, audio)
    if kind is None or kind == "file":
        path = containment.local_file(url, where)
        extension = PurePosixPath(path).suffix.lower()
        if extension == HLS_EXTENSION:
            return lambda preset, video, audio: HlsSink(url, preset, video, audio, path)
        if extension in CONTAINERS:
            container = CONTAINERS[extension]
            return lambda preset, video, audio: FileSink(url, preset, video, audio, path,
                                                         container)
        raise FieldError(where, "a file output must end in .mp4, .mkv or .m3u8 (HLS)")
    raise FieldError(where, f"scheme {kind} is not allowed; use a file under a media root "
                            "(file:///… or an absolute path ending .mp4, .mkv or .m3u8) or "
                            "rtmp(s)://host/app/stream")
