"""``ffrtmp``: one entry point for the daemons, the wrapper and the operator commands.

``main`` returns an exit status (the console script exits with it). Subcommands are imported
only when chosen, so ``ffrtmp jobs list`` never imports Flask and ``ffrtmp wrapper run``
never imports requests. Known errors become one line on stderr and a named status.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ffrtmp import __version__, config
from ffrtmp.cli.context import CliError, Env, ExitStatus, exit_table

# the daemons and the wrapper's commands, with their summaries; each is imported only when chosen
COMMANDS: dict[str, str] = {
    config.MASTER: "run the master (gunicorn, in this process)",
    config.AGENT: "run a worker agent",
}
WRAPPER: dict[str, str] = {
    "run": "start a workload and record its result",
    "attach": "observe a running workload to completion",
}

EXAMPLES = """examples:
  ffrtmp jobs submit --input file:///srv/media/in/talk.mkv \\
      --output file:///srv/media/out/talk-480p.mp4 --preset h264-480p --watch
  ffrtmp jobs list --state running
  ffrtmp jobs show j-2daabfb67c8d
  ffrtmp nodes list
  ffrtmp nodes drain n-99321a2e0971
  eval "$(ffrtmp completion bash)"

settings: flags, then FFRTMP_* variables, then $FFRTMP_CONFIG, else ~/.config/ffrtmp/cli.env
over /etc/ffrtmp/cli.env; `ffrtmp jobs submit --help` lists the presets and job spec fields.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ffrtmp", description="A managed FFmpeg transcoding farm.",
                                     epilog=EXAMPLES + "\n" + exit_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ffrtmp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        config.add_arguments(p, name)
    wrapper = sub.add_parser("wrapper", help="the per-job wrapper (run | attach)")
    wsub = wrapper.add_subparsers(dest="wrapper_command", metavar="run|attach", required=True)
    for name, summary in WRAPPER.items():
        wsub.add_parser(name, help=summary, add_help=False)
    from ffrtmp.cli import commands, completion, db, media

    commands.add_parsers(sub)
    media.add_parsers(sub)
    db.add_parsers(sub)
    completion.add_parser(sub, parser)
    return parser


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = env or Env()
    if argv[:1] == ["wrapper"] and len(argv) > 1 and argv[1] in WRAPPER:
        return _wrapper(argv[1], argv[2:])
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


def _wrapper(command: str, argv: list[str]) -> int:
    """The wrapper parses its own arguments: it runs per job and must start fast."""
    if command == "run":
        from ffrtmp.wrapper.run import main as run_workload

        return run_workload(argv)
    from ffrtmp.wrapper.attach import main as attach_workload

    return attach_workload(argv)


def _dispatch(args: argparse.Namespace, env: Env) -> int:
    """A daemon's settings are resolved before its heavy imports: a bad one stops it at once."""
    if args.command == config.MASTER:
        master = config.load(config.MASTER, args, env.environ)
        from ffrtmp.master.serve import main as serve_master

        return serve_master(master)
    if args.command == config.AGENT:
        agent = config.load(config.AGENT, args, env.environ)
        from ffrtmp.agent.main import main as run_agent

        return run_agent(agent)
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
