"""The wrapper's command line: built (``WrapperCall.argv``) and parsed (``parse``) here only.

The agent passes every value as one ``--name=value`` word, so argparse takes what follows the
``=`` verbatim: an intent of ``-x``, a path named ``--`` or a node called ``--help`` is a
value, never an option. The workload's own argv follows a lone ``--`` and is not parsed at
all. One table (``OPTIONS``) declares each option once, for both directions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

from ffrtmp.config import BY_NAME, Setting

Mode = Literal["run", "attach"]
N = TypeVar("N", int, float)

# The agent's settings of the same names: a hand-started wrapper behaves as the agent's would.
STATE_DIR, LOG_DIR, LOG_LEVEL = BY_NAME["state_dir"], BY_NAME["log_dir"], BY_NAME["log_level"]
DEFAULT_CANCEL_GRACE_S: float = BY_NAME["cancel_grace"].parse(BY_NAME["cancel_grace"].default or "")
EX_SETUP = 2  # refused before anything started or was written (argparse uses 2 as well)

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


# --- value types --------------------------------------------------------------------------


def job_id_arg(raw: str) -> str:
    """A job id is also a directory and cgroup name, so it must be one safe path component."""
    if not _JOB_ID.fullmatch(raw) or ".." in raw:
        raise argparse.ArgumentTypeError(
            "expected 1-128 characters of letters, digits, '.', '_' or '-'")
    return raw


def _checked(raw: str, convert: Callable[[str], N], ok: Callable[[N], bool], not_a_number: str,
             out_of_range: str) -> N:
    try:
        value = convert(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(not_a_number) from None
    if not ok(value):
        raise argparse.ArgumentTypeError(out_of_range)
    return value


def positive_int(raw: str) -> int:
    message = "expected a positive integer"
    return _checked(raw, int, lambda value: value >= 1, message, message)


def seconds_arg(raw: str) -> float:
    return _checked(raw, float, lambda value: value >= 0, "expected a number of seconds",
                    "expected a number of seconds >= 0")


def cpu_max_arg(raw: str) -> str:
    """``"QUOTA PERIOD"`` (or ``"QUOTA"``), microseconds, QUOTA may be ``max``: cpu.max's form."""
    parts = raw.split()
    ok = (1 <= len(parts) <= 2
          and (parts[0] == "max" or (parts[0].isdigit() and int(parts[0]) > 0))
          and all(p.isdigit() and int(p) > 0 for p in parts[1:]))
    if not ok:
        raise argparse.ArgumentTypeError('expected "QUOTA PERIOD" in microseconds, '
                                         'e.g. "50000 100000"')
    return " ".join(parts)


# --- the one table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    field: str
    type: Callable[[str], Any]
    modes: tuple[Mode, ...]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.removesuffix("_s").replace("_", "-")


def _default_help(setting: Setting) -> str:
    return f"default: ${setting.env} or {setting.default}"


def setting_value(flag: str | None, setting: Setting, environ: Mapping[str, str]) -> str:
    """The flag, else the setting's environment variable, else its default (as the agent)."""
    return flag or environ.get(setting.env) or setting.default or ""


BOTH: tuple[Mode, ...] = ("run", "attach")
OPTIONS: tuple[Option, ...] = (
    Option("pid", positive_int, ("attach",), "the workload to follow (required)"),
    Option("start_ticks", int, ("attach",),
           "field 22 of /proc/<pid>/stat when the workload started (from wrapper.json); "
           "refuses a process that doesn't match"),
    Option("job_id", job_id_arg, BOTH, "the job (required)"),
    Option("attempt", positive_int, BOTH, "the attempt number (default 1)"),
    Option("intent", str, BOTH, "free-text label carried into the result"),
    Option("node", str, BOTH, "node id added to log lines (node=)"),
    Option("job_dir", str, BOTH, "default: <state-dir>/jobs/<job-id>.<attempt>, as the agent's"),
    Option("state_dir", str, BOTH, _default_help(STATE_DIR)),
    Option("log_dir", str, BOTH, _default_help(LOG_DIR)),
    Option("log_level", str, BOTH, _default_help(LOG_LEVEL)),
    Option("cancel_grace_s", seconds_arg, BOTH,
           f"seconds between SIGTERM and SIGKILL on cancel (default {BY_NAME['cancel_grace'].default})"),
    Option("cpu_max", cpu_max_arg, ("run",), 'cgroup v2 cpu.max, e.g. "50000 100000"'),
    Option("memory_max", positive_int, ("run",), "cgroup v2 memory.max in bytes"),
)


@dataclass(frozen=True)
class WrapperCall:
    """One wrapper invocation: what the agent asks for and what the wrapper receives."""

    mode: Mode
    job_id: str
    attempt: int = 1
    intent: str | None = None
    node: str | None = None
    job_dir: str | None = None
    state_dir: str | None = None
    log_dir: str | None = None
    log_level: str | None = None
    cancel_grace_s: float = DEFAULT_CANCEL_GRACE_S
    cpu_max: str | None = None
    memory_max: int | None = None
    pid: int | None = None
    start_ticks: int | None = None
    command: tuple[str, ...] = ()

    def argv(self, python: str = sys.executable) -> list[str]:
        """The full command; each value in one ``--name=value`` word, the workload after ``--``."""
        words = entry(self.mode, python)
        for option in OPTIONS:
            value = getattr(self, option.field)
            if self.mode in option.modes and value is not None:
                words.append(f"{option.flag}={value}")
        return [*words, "--", *self.command] if self.mode == "run" else words


def entry(mode: Mode, python: str = sys.executable) -> list[str]:
    """The command that starts a wrapper, before its options."""
    return [python, "-m", "ffrtmp", "wrapper", mode]


# --- parsing ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python before 3.12 drops a value of exactly "--" even in "--intent=--".
        if action.option_strings and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def build_parser(mode: Mode) -> argparse.ArgumentParser:
    usage = "%(prog)s --job-id=ID [options] -- CMD [ARGS...]" if mode == "run" else None
    description = ("Run one workload in its own session, follow it and record its result."
                   if mode == "run" else
                   "Follow an existing workload by pid until it exits, and record it.")
    parser = _Parser(prog=f"ffrtmp wrapper {mode}", usage=usage, description=description,
                     allow_abbrev=False)
    for option in OPTIONS:
        if mode in option.modes:
            parser.add_argument(option.flag, dest=option.field, type=option.type,
                                required=option.field in ("job_id", "pid"), help=option.help,
                                default=_default(option.field))
    return parser


def _default(name: str) -> Any:
    return next(f.default for f in fields(WrapperCall) if f.name == name)


def parse(mode: Mode, argv: Sequence[str]) -> WrapperCall | int:
    """The call, or the exit status argparse chose (0 for --help, 2 for bad usage).

    Only ``run`` takes a workload, after the first lone ``--``.
    """
    words = list(argv)
    split = words.index("--") if "--" in words else len(words)
    parser = build_parser(mode)
    try:
        namespace = parser.parse_args(words[:split])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EX_SETUP
    command = tuple(words[split + 1:])
    if mode == "run" and not command:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give the command after '--'", file=sys.stderr)
        return EX_SETUP
    if mode == "attach" and split < len(words):
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: attach takes no command", file=sys.stderr)
        return EX_SETUP
    return replace(WrapperCall(mode=mode, job_id=namespace.job_id), **vars(namespace),
                   command=command)
