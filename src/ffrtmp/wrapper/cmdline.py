"""The wrapper's command line: built (``WrapperCall.argv``) and parsed (``parse``) here only.

The agent passes every value as one ``--name=value`` word, so the value is what follows the
``=``, verbatim: an intent of ``-x``, a path named ``--`` or a node called ``--help`` is a
value, never an option. The workload's own argv follows a lone ``--`` and is not parsed at
all. One table (``OPTIONS``) declares each option once, for both directions.

This module is on the path to the workload's exec, so it imports only what Python has
loaded already: a call made of ``--name=value`` words with good values is read directly
from the table; anything else (``--help``, a mistake) goes to argparse, built from the same
table, for its usage and its messages.
"""

from __future__ import annotations

import sys

from ffrtmp.defaults import WORKER_DEFAULTS, env_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, Literal

    Mode = Literal["run", "attach"]
else:
    Mode = str  # only ever an annotation; the real one costs the typing module

# The agent's settings of the same names: a hand-started wrapper behaves as the agent's would.
STATE_DIR, LOG_DIR, LOG_LEVEL = "state_dir", "log_dir", "log_level"
DEFAULT_CANCEL_GRACE_S: float = float(WORKER_DEFAULTS["cancel_grace"])
EX_SETUP = 2  # refused before anything started or was written (argparse uses 2 as well)
MODES: tuple[Mode, ...] = ("run", "attach")
PREFIX = ("-m", "ffrtmp", "wrapper")  # after the interpreter, before the mode

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("._-")


class BadValue(ValueError):
    """A value its option does not take; the message says what it expects."""


# --- value types --------------------------------------------------------------------------


def job_id_arg(raw: str) -> str:
    """A job id is also a directory and cgroup name, so it must be one safe path component."""
    if (not 1 <= len(raw) <= 128 or raw[0] not in _ALNUM or ".." in raw
            or not _ID_CHARS.issuperset(raw)):
        raise BadValue("expected 1-128 characters of letters, digits, '.', '_' or '-'")
    return raw


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise BadValue("expected a positive integer")
    return value


def seconds_arg(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BadValue("expected a number of seconds") from None
    if not value >= 0:
        raise BadValue("expected a number of seconds >= 0")
    return value


def cpu_max_arg(raw: str) -> str:
    """``"QUOTA PERIOD"`` (or ``"QUOTA"``), microseconds, QUOTA may be ``max``: cpu.max's form."""
    parts = raw.split()
    ok = (1 <= len(parts) <= 2
          and (parts[0] == "max" or (parts[0].isdigit() and int(parts[0]) > 0))
          and all(p.isdigit() and int(p) > 0 for p in parts[1:]))
    if not ok:
        raise BadValue('expected "QUOTA PERIOD" in microseconds, e.g. "50000 100000"')
    return " ".join(parts)


# --- the one table ------------------------------------------------------------------------


class Option:
    """One option: the WrapperCall field it sets, its value type, the modes that take it."""

    __slots__ = ("field", "type", "modes", "help")  # noqa: RUF023 - the order of __init__

    def __init__(self, field: str, type: Callable[[str], Any], modes: tuple[Mode, ...],
                 help: str) -> None:
        self.field, self.type, self.modes, self.help = field, type, modes, help

    @property
    def flag(self) -> str:
        return "--" + self.field.removesuffix("_s").replace("_", "-")


def _default_help(name: str) -> str:
    return f"default: ${env_name(name)} or {WORKER_DEFAULTS[name]}"


def setting_value(flag: str | None, name: str, environ: Mapping[str, str]) -> str:
    """The flag, else the setting's environment variable, else its default (as the agent)."""
    return flag or environ.get(env_name(name)) or WORKER_DEFAULTS[name]


BOTH: tuple[Mode, ...] = MODES
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
           f"seconds between SIGTERM and SIGKILL on cancel (default {WORKER_DEFAULTS['cancel_grace']})"),
    Option("cpu_max", cpu_max_arg, ("run",), 'cgroup v2 cpu.max, e.g. "50000 100000"'),
    Option("memory_max", positive_int, ("run",), "cgroup v2 memory.max in bytes"),
)
REQUIRED = {"run": ("job_id",), "attach": ("job_id", "pid")}


class WrapperCall:
    """One wrapper invocation: what the agent asks for and what the wrapper receives.

    Immutable and compared by value (a plain class: a dataclass would drag ``inspect`` onto
    the path to the workload's exec).
    """

    __slots__ = (  # noqa: RUF023 - the order of __init__ and repr
        "mode", "job_id", "attempt", "intent", "node", "job_dir", "state_dir", "log_dir",
        "log_level", "cancel_grace_s", "cpu_max", "memory_max", "pid", "start_ticks", "command")
    mode: Mode
    job_id: str
    attempt: int
    intent: str | None
    node: str | None
    job_dir: str | None
    state_dir: str | None
    log_dir: str | None
    log_level: str | None
    cancel_grace_s: float
    cpu_max: str | None
    memory_max: int | None
    pid: int | None
    start_ticks: int | None
    command: tuple[str, ...]

    def __init__(self, *, mode: Mode, job_id: str, attempt: int = 1, intent: str | None = None,
                 node: str | None = None, job_dir: str | None = None,
                 state_dir: str | None = None, log_dir: str | None = None,
                 log_level: str | None = None, cancel_grace_s: float = DEFAULT_CANCEL_GRACE_S,
                 cpu_max: str | None = None, memory_max: int | None = None,
                 pid: int | None = None, start_ticks: int | None = None,
                 command: tuple[str, ...] = ()) -> None:
        values = dict(locals())
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"WrapperCall is immutable: cannot set {name}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WrapperCall) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"WrapperCall({shown})"

    def argv(self, python: str = sys.executable) -> list[str]:
        """The full command; each value in one ``--name=value`` word, the workload after ``--``."""
        return [python, *PREFIX, *self.words()]

    def words(self) -> list[str]:
        """The command after the entry's ``-m ffrtmp wrapper``: the mode, then the options
        (what a standby wrapper is handed)."""
        words: list[str] = [self.mode]
        for option in OPTIONS:
            value = getattr(self, option.field)
            if self.mode in option.modes and value is not None:
                words.append(f"{option.flag}={value}")
        return [*words, "--", *self.command] if self.mode == "run" else words


def entry(mode: str, python: str = sys.executable) -> list[str]:
    """The command that starts a wrapper, before its options (mode ``standby``: see there)."""
    return [python, *PREFIX, mode]


def _defaults() -> dict[str, Any]:
    return dict(WrapperCall.__init__.__kwdefaults__ or {})


# --- parsing ------------------------------------------------------------------------------


def parse(mode: Mode, argv: Sequence[str]) -> WrapperCall | int:
    """The call, or the exit status argparse chose (0 for --help, 2 for bad usage).

    Only ``run`` takes a workload, after the first lone ``--``.
    """
    words = list(argv)
    split = words.index("--") if "--" in words else len(words)
    command = tuple(words[split + 1:])
    values = _read_words(mode, words[:split])
    if values is None or (mode == "run") != bool(command) or (mode == "attach" and split < len(words)):
        return _parse_with_argparse(mode, words, split)
    return WrapperCall(mode=mode, **values, command=command)


def _read_words(mode: Mode, words: list[str]) -> dict[str, Any] | None:
    """The values of a call made only of known ``--name=value`` words with good values;
    None for anything else, which argparse then explains."""
    known = {option.flag: option for option in OPTIONS if mode in option.modes}
    values: dict[str, Any] = {}
    for word in words:
        flag, equals, raw = word.partition("=")
        option = known.get(flag)
        if not equals or option is None:
            return None
        try:
            values[option.field] = option.type(raw)
        except ValueError:
            return None
    return values if all(name in values for name in REQUIRED[mode]) else None


def _parse_with_argparse(mode: Mode, words: list[str], split: int) -> WrapperCall | int:
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
    return WrapperCall(mode=mode, **{**_defaults(), **vars(namespace)}, command=command)


def build_parser(mode: Mode) -> argparse.ArgumentParser:
    """The same table as argparse sees it: for ``--help`` and for the messages of mistakes."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
            # Python before 3.12 drops a value of exactly "--" even in "--intent=--".
            if action.option_strings and arg_strings == ["--"]:
                value = self._get_value(action, "--")
                self._check_value(action, value)
                return value
            return super()._get_values(action, arg_strings)

    usage = "%(prog)s --job-id=ID [options] -- CMD [ARGS...]" if mode == "run" else None
    description = ("Run one workload in its own session, follow it and record its result."
                   if mode == "run" else
                   "Follow an existing workload by pid until it exits, and record it.")
    parser = Parser(prog=f"ffrtmp wrapper {mode}", usage=usage, description=description,
                    allow_abbrev=False)
    defaults = _defaults()
    for option in OPTIONS:
        if mode in option.modes:
            parser.add_argument(option.flag, dest=option.field, type=_explained(option.type),
                                required=option.field in REQUIRED[mode], help=option.help,
                                default=defaults.get(option.field))
    return parser


def _explained(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert`` as argparse wants it: our own messages as ``ArgumentTypeError``."""
    if not isinstance(convert, type(job_id_arg)):
        return convert  # int, str: argparse names them itself
    import argparse

    def checked(raw: str) -> Any:
        try:
            return convert(raw)
        except BadValue as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    checked.__name__ = convert.__name__
    return checked
