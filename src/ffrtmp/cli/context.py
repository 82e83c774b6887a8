"""What every ``ffrtmp`` command runs with: its surroundings, its errors and its exit statuses.

Both the entry point and the operator commands import this module, and it imports neither.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from ffrtmp import config


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 4
    CONFIG = config.EX_CONFIG
    INTERRUPTED = 130


@dataclass
class Env:
    """The process's surroundings, injectable by tests."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    @property
    def interactive(self) -> bool:
        return hasattr(self.stderr, "isatty") and self.stderr.isatty()


class CliError(Exception):
    """An error to show as one line, with the status to exit with."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.status = status
