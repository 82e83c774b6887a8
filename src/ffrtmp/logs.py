"""Logging to a file and to stdout, as every ffrtmp process does.

The file handler (``RotatedFileHandler``) reopens the path after logrotate moves the file, so no
reload or ``copytruncate`` is needed; it checks the path at most once a second, not per record. Under systemd
(``JOURNAL_STREAM`` set) stdout lines start with ``<N>`` so journald records the priority and
``journalctl -p err`` works. Records about a job or node carry ``job=<id>`` and ``node=<id>``:
pass ``extra=fields(job=..., node=...)``.

Every record is exactly one line: the formatter escapes control characters (``\\n``,
``\\x1b``, …) in the whole rendered text, tracebacks included, so text a client sent can never
start a line of its own, whatever field or exception carries it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ffrtmp.isotime import iso_from_ts
from ffrtmp.urls import redact_text

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_FIELDS = ("job", "attempt", "node")
# C0/C1 controls and DEL, lone surrogates (not encodable: the handler would drop the record),
# Unicode line/paragraph separators and the bidi/zero-width format characters that reorder text.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u200b-\u200f\u202a-\u202e"
                     r"\u2060-\u2064\u2066-\u206f\ufeff]")
_RENDERED = "_ffrtmp_text"  # a record's escaped text, kept on it for the next handler
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "critical": logging.CRITICAL}


def level_of(name: str) -> int:
    """A level name of the seed (``debug info warn error fatal``) or of Python, any case."""
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"expected one of {', '.join(LEVELS)}") from None


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(text: str) -> str:
    """``text`` with every control character escaped, so it can't break or repaint a log line."""
    return _UNSAFE.sub(_escape_char, text)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a record: only the given, non-empty job/attempt/node values."""
    return {k: v for k, v in values.items() if k in _FIELDS and v not in (None, "")}


class Formatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: message job=.. node=..`` (time omitted for journald)."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text: str | None = record.__dict__.get(_RENDERED)
        if text is None:  # the file and stdout show the same text: render it once per record
            text = record.__dict__[_RENDERED] = self._text(record)
        if self.journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return f"{iso_from_ts(record.created)} {text}"

    def _text(self, record: logging.LogRecord) -> str:
        tail = "".join(f" {k}={getattr(record, k)}" for k in _FIELDS if hasattr(record, k))
        text = f"{record.levelname} {record.name}: {record.getMessage()}{tail}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return one_line(redact_text(text))


class RotatedFileHandler(logging.FileHandler):
    """A file that logrotate may move (``create``, no ``copytruncate``), checked once a second.

    ``logging.handlers.WatchedFileHandler`` stats the path before every record, a system call per
    line on the master's hot path. This one stats it when a second has passed since the last
    check: records written in between still go to the moved file, which logrotate leaves in
    place until the next rotation (``delaycompress``), so no line is lost. (It also keeps
    ``logging.handlers`` and its imports off the start-up path of short-lived processes.)
    """

    CHECK_S = 1.0

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self._identity = self._stream_identity()
        self._checked = time.monotonic()

    def _stream_identity(self) -> tuple[int, int] | None:
        if self.stream is None:
            return None
        st = os.fstat(self.stream.fileno())
        return st.st_dev, st.st_ino

    def _reopen_if_moved(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.CHECK_S:
            return
        self._checked = now
        try:
            st = Path(self.baseFilename).stat()
        except FileNotFoundError:
            current = None
        else:
            current = (st.st_dev, st.st_ino)
        if current != self._identity and self.stream is not None:
            self.stream.flush()
            self.stream.close()
            self.stream = None  # as WatchedFileHandler does: _open() may fail
            self.stream = self._open()
            self._identity = self._stream_identity()

    def emit(self, record: logging.LogRecord) -> None:
        self._reopen_if_moved()
        super().emit(record)


def log_path(log_dir: str, component: str, filename: str) -> Path:
    """``<log_dir>/<component>/<filename>``, or ``./logs/…`` when that can't be written."""
    for base in (Path(log_dir), Path.cwd() / "logs"):
        path = base / component / filename
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8"):
                pass
            return path
        except OSError:
            continue
    raise OSError(f"cannot write {filename} under {log_dir} or ./logs")


def setup(component: str, filename: str, *, log_dir: str, level: str = "info",
          stream: TextIO | None = None) -> Path:
    """Send the root logger to the component's file and to stdout; return the file's path."""
    path = log_path(log_dir, component, filename)
    file_handler = RotatedFileHandler(path)
    file_handler.setFormatter(Formatter())
    _install([file_handler, _stdout(stream)], level)
    return path


def setup_stdout(*, level: str = "info", stream: TextIO | None = None) -> None:
    """stdout alone, in the same escaped one-line format: for a process with no writable file."""
    _install([_stdout(stream)], level)


def _stdout(stream: TextIO | None) -> logging.Handler:
    out = logging.StreamHandler(stream or sys.stdout)
    out.setFormatter(Formatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    return out


def _install(handlers: list[logging.Handler], level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level_of(level))
