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
    """Every status an operator command exits with, declared once: ``--help`` and the README
    show ``EXIT_TABLE`` (tests check the README against it)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    UNSATISFIABLE = 3
    AUTH = 4
    CONFIG = config.EX_CONFIG
    INTERRUPTED = 130


EXIT_MEANINGS: dict[ExitStatus, str] = {
    ExitStatus.OK: "success (jobs watch, submit --watch: the job succeeded)",
    ExitStatus.ERROR: "error: the master refused, could not be reached (the message says how), "
                      "the job watched did not succeed, or nodes drain --wait reached its deadline",
    ExitStatus.USAGE: "usage or job spec error (bad flags, a spec the CLI or the master refuses)",
    ExitStatus.UNSATISFIABLE: "jobs submit --strict: no registered node can run the job",
    ExitStatus.AUTH: "authentication refused (HTTP 401/403)",
    ExitStatus.CONFIG: "bad configuration: the one line names the setting",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_table() -> str:
    """The statuses as ``--help`` prints them."""
    return "exit statuses:\n" + "".join(f"  {int(s):>3}  {text}\n" for s, text in EXIT_MEANINGS.items())


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
