"""``ffrtmp``: one entry point for the daemons, the wrapper and the operator commands.

``main`` returns an exit status (the console script exits with it). Subcommands are imported
only when chosen, so ``ffrtmp jobs list`` never imports Flask and ``ffrtmp wrapper run``
never imports requests. Known errors become one line on stderr and a named status.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ffrtmp import __version__, config


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

    @property
    def interactive(self) -> bool:
        return hasattr(self.stderr, "isatty") and self.stderr.isatty()


class CliError(Exception):
    """An error to show as one line, with the status to exit with."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.status = status


# name -> (module, function, summary); imported only when chosen
COMMANDS: dict[str, tuple[str, str, str]] = {
    "master": ("ffrtmp.master.serve", "main", "run the master (gunicorn, in this process)"),
    "agent": ("ffrtmp.agent.main", "main", "run a worker agent"),
}
WRAPPER = {
    "run": ("ffrtmp.wrapper.run", "start a workload and record its result"),
    "attach": ("ffrtmp.wrapper.attach", "observe a running workload to completion"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ffrtmp", description="A managed FFmpeg transcoding farm.")
    parser.add_argument("--version", action="version", version=f"ffrtmp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, _, summary) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        config.add_arguments(p, name)
    wrapper = sub.add_parser("wrapper", help="the per-job wrapper (run | attach)")
    wsub = wrapper.add_subparsers(dest="wrapper_command", metavar="run|attach", required=True)
    for name, (_, summary) in WRAPPER.items():
        wsub.add_parser(name, help=summary, add_help=False)
    from ffrtmp import control

    control.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = env or Env()
    if argv[:1] == ["wrapper"] and len(argv) > 1 and argv[1] in WRAPPER:
        module = importlib.import_module(WRAPPER[argv[1]][0])
        return int(module.main(argv[2:]))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code or 0)
    try:
        return _dispatch(args, env)
    except CliError as exc:
        print(f"ffrtmp: {exc}", file=env.stderr)
        return int(exc.status)
    except config.ConfigError as exc:
        print(f"ffrtmp: {exc}", file=env.stderr)
        return int(ExitStatus.CONFIG)
    except KeyboardInterrupt:
        print("ffrtmp: interrupted", file=env.stderr)
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        return int(ExitStatus.ERROR)
    except Exception as exc:
        if args.debug:
            raise
        print(f"ffrtmp: {type(exc).__name__}: {exc} (run with --debug for details)", file=env.stderr)
        return int(ExitStatus.ERROR)


def _dispatch(args: argparse.Namespace, env: Env) -> int:
    if args.command in COMMANDS:
        module, func, _ = COMMANDS[args.command]
        settings = config.load(args.command, args, env.environ)
        return int(getattr(importlib.import_module(module), func)(settings))
    handler: Any = args.handler
    return int(handler(args, env))


def _silence_stdout() -> None:
    """After a closed pipe (``| head``), keep Python from complaining again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _stop_before_serving(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def run() -> None:
    """The console script.

    A daemon told to stop before it has its own handlers (gunicorn's arbiter, the agent's
    shutdown) has nothing to let finish: it stops cleanly, with exit 0, not killed by the signal.
    """
    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        signal.signal(signal.SIGTERM, _stop_before_serving)
    sys.exit(main())
