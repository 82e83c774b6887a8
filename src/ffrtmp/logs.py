"""Logging to a file and to stdout, as every ffrtmp process does.

The file handler is ``WatchedFileHandler``: after logrotate moves the file, the next record
reopens the path, so no reload or ``copytruncate`` is needed. Under systemd
(``JOURNAL_STREAM`` set) stdout lines start with ``<N>`` so journald records the priority and
``journalctl -p err`` works. Records about a job or node carry ``job=<id>`` and ``node=<id>``:
pass ``extra=fields(job=..., node=...)``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_FIELDS = ("job", "attempt", "node")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a record: only the given, non-empty job/attempt/node values."""
    return {k: v for k, v in values.items() if k in _FIELDS and v not in (None, "")}


class Formatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: message job=.. node=..`` (time omitted for journald)."""

    converter = time.gmtime

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        tail = "".join(f" {k}={getattr(record, k)}" for k in _FIELDS if hasattr(record, k))
        text = f"{record.levelname} {record.name}: {record.getMessage()}{tail}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.journal:
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
            return "\n".join(prefix + line for line in text.splitlines())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z {text}"


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
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    file_handler.setFormatter(Formatter())
    out = logging.StreamHandler(stream or sys.stdout)
    out.setFormatter(Formatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    root.addHandler(file_handler)
    root.addHandler(out)
    root.setLevel(level.upper())
    return path
