"""A local file as a request body: streamed, sized, counted and cancelable.

requests sends an object with ``__len__`` and ``read`` with that Content-Length (not chunked)
and reads it piece by piece, so a large output never sits in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

REPORT_EVERY = 1 << 20  # progress is reported about once a MiB


class Cancel(Exception):
    """Raised from ``read`` when the cancel event is set (the transport turns it into Canceled)."""


class FileBody:
    """``path`` opened for one request; the caller closes it."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.file: BinaryIO = path.open("rb")
        self.size = path.stat().st_size
        self.sent = self._reported = 0
        self.progress, self.cancel = progress, cancel

    def __len__(self) -> int:
        return self.size - self.sent

    def read(self, n: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancel
        data = self.file.read(n if n and n > 0 else REPORT_EVERY)
        self.sent += len(data)
        if self.progress is not None and (self.sent - self._reported >= REPORT_EVERY or not data):
            self._reported = self.sent
            self.progress(self.sent)
        return data

    def close(self) -> None:
        self.file.close()


class Progress:
    """Calls ``progress`` with the bytes moved so far, at most about once a MiB."""

    def __init__(self, progress: Callable[[int], None] | None, start: int = 0) -> None:
        self.progress, self.moved, self._reported = progress, start, start

    def add(self, n: int, *, final: bool = False) -> None:
        self.moved += n
        if self.progress is not None and (final or self.moved - self._reported >= REPORT_EVERY):
            self._reported = self.moved
            self.progress(self.moved)
