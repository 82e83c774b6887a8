"""How an output is encoded: a preset merged with its overrides, as typed settings.

Overrides are checked by the same rules as the presets' own values, so a preset is just a
default set of overrides; ``settings`` gives back the text form the spec's JSON carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ffrtmp.jobspec import numbers
from ffrtmp.jobspec.numbers import Bitrate
from ffrtmp.jobspec.presets import AUDIO_OVERRIDES, COPY, ENCODER_PRESETS, OVERRIDES, PRESETS
from ffrtmp.validation import CODEC, FieldError, one_of

_VIDEO_ENCODING = ("video_bitrate", "size", "fps", "encoder_preset")
_AUDIO_ENCODING = ("audio_bitrate",)


@dataclass(frozen=True)
class VideoSettings:
    codec: str
    bitrate: Bitrate | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    encoder_preset: str | None = None

    @property
    def is_copy(self) -> bool:
        return self.codec == COPY


@dataclass(frozen=True)
class AudioSettings:
    codec: str
    bitrate: Bitrate | None = None

    @property
    def is_copy(self) -> bool:
        return self.codec == COPY


_RULES: dict[str, Callable[[Any, str], Any]] = {
    "video_codec": CODEC, "audio_codec": CODEC, "video_bitrate": numbers.bitrate,
    "audio_bitrate": numbers.bitrate, "size": numbers.size, "fps": numbers.fps,
    "encoder_preset": one_of(*ENCODER_PRESETS),
}
_TEXT: dict[str, Callable[[Any], str]] = {
    "video_bitrate": lambda rate: rate.text, "audio_bitrate": lambda rate: rate.text,
    "size": numbers.format_size, "fps": numbers.format_number,
}
_PRESET_VALUES: dict[str, dict[str, Any]] = {
    name: {key: _RULES[key](value, f"presets.{name}.{key}") for key, value in preset.items()}
    for name, preset in PRESETS.items()}


def encoding(preset: str, doc: Mapping[str, Any], where: str) -> tuple[VideoSettings, AudioSettings]:
    """Overrides win over the preset; a stream copy drops (and refuses) encoding settings."""
    overrides = {key: _RULES[key](doc[key], f"{where}.{key}") for key in OVERRIDES if key in doc}
    values = {**_PRESET_VALUES[preset], **overrides}
    for codec_key, encoding_keys in (("video_codec", _VIDEO_ENCODING),
                                     ("audio_codec", _AUDIO_ENCODING)):
        if values.get(codec_key) != COPY:
            continue
        for key in encoding_keys:
            if key in overrides:
                stream = codec_key.split("_")[0]
                raise FieldError(f"{where}.{key}",
                                 f"cannot be combined with a {stream} stream copy")
            values.pop(key, None)
    audio = {key.removeprefix("audio_"): values[key] for key in AUDIO_OVERRIDES if key in values}
    video = {key.removeprefix("video_"): value for key, value in values.items()
             if key not in AUDIO_OVERRIDES}
    return VideoSettings(**video), AudioSettings(**audio)


def settings_text(video: VideoSettings, audio: AudioSettings) -> dict[str, str]:
    """The settings as the spec's JSON writes them, by override name."""
    values: dict[str, Any] = {
        "video_codec": video.codec, "video_bitrate": video.bitrate, "size": video.size,
        "fps": video.fps, "encoder_preset": video.encoder_preset,
        "audio_codec": audio.codec, "audio_bitrate": audio.bitrate}
    return {key: _TEXT.get(key, str)(value) for key, value in values.items() if value is not None}
