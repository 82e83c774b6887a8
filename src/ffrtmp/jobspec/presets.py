"""The named encodings an output starts from, as an operator would write them."""

from __future__ import annotations

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
VIDEO_OVERRIDES = ("video_codec", "video_bitrate", "size", "fps", "encoder_preset")
AUDIO_OVERRIDES = ("audio_codec", "audio_bitrate")
OVERRIDES = (*VIDEO_OVERRIDES, *AUDIO_OVERRIDES)
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                   "slower", "veryslow", "placebo")
COPY = "copy"
