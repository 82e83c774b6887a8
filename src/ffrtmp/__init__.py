"""ffrtmp: a managed FFmpeg transcoding farm."""

__version__ = "0.1.0"
