"""A one-line transfer meter (percent, MB, MB/s) for a terminal, redrawn at most ten times a second."""

from __future__ import annotations

import time
from typing import TextIO

MB = 1_000_000


class ProgressBar:
    """Call it with the bytes moved so far (a ``progress`` callback); ``done()`` ends the line."""

    def __init__(self, stream: TextIO, total: int | None, *, enabled: bool = True) -> None:
        self.stream, self.total, self.enabled = stream, total, enabled
        self.started = time.monotonic()
        self.moved, self._drawn_at, self._width = 0, 0.0, 0

    def __call__(self, moved: int) -> None:
        self.moved = moved
        now = time.monotonic()
        if self.enabled and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._draw()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        speed = f"{self.moved / MB / elapsed:7.1f} MB/s"
        if self.total:
            percent = min(100.0, 100.0 * self.moved / self.total)
            filled = int(percent // 5)
            return (f"[{'#' * filled}{'.' * (20 - filled)}] {percent:5.1f}%  "
                    f"{self.moved / MB:.1f}/{self.total / MB:.1f} MB  {speed}")
        return f"{self.moved / MB:.1f} MB  {speed}"

    def _draw(self) -> None:
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def done(self) -> None:
        """The final state (100 % of a known total) and a newline."""
        if not self.enabled:
            return
        if self.total is not None:
            self.moved = max(self.moved, self.total)
        self._draw()
        self.stream.write("\n")
        self.stream.flush()
