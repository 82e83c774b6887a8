"""``ffrtmp wrapper standby``: a wrapper started ahead of its job, waiting for its call.

The agent keeps one per free slot (``ffrtmp.agent.standby``) so that a freed slot's next
workload does not wait for Python's start-up and the wrapper's imports: those happened
while the slot was still busy. It reads one line from stdin, a JSON object
``{"argv": [MODE, "--name=value", …], "out": "<job dir>/wrapper.out"}`` (``argv`` as
``WrapperCall.argv`` builds it, after the entry's ``-m ffrtmp wrapper``). End of input
before a call (the agent died, or closed its pool) makes it exit 0 having touched nothing.

With its call it is a cold wrapper in every way: its stdout and stderr go to ``out``, its
stdin to /dev/null, and it runs the very ``run`` or ``attach`` a cold one runs. The agent
started it in a session of its own, so it outlives the agent from the start.
"""

from __future__ import annotations

import json
import os
import sys

from ffrtmp.wrapper import attach, following, run  # noqa: F401 - imported now, not per job
from ffrtmp.wrapper.cmdline import EX_SETUP, MODES


def main(argv: list[str]) -> int:
    if argv:
        print("usage: ffrtmp wrapper standby (its call comes on stdin)", file=sys.stderr)
        return EX_SETUP
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0  # no call will come: the agent is gone or closed its pool
    call = _read_call(line)
    if call is None:
        return EX_SETUP
    words, out = call
    _redirect(out)
    if words[0] == "run":
        return run.main(words[1:])
    return attach.main(words[1:])


def _read_call(line: bytes) -> tuple[list[str], str] | None:
    try:
        message = json.loads(line)
        words, out = message["argv"], message["out"]
    except (ValueError, TypeError, KeyError) as exc:
        print(f"ffrtmp wrapper standby: not a call ({type(exc).__name__})", file=sys.stderr)
        return None
    if (not isinstance(words, list) or not words or words[0] not in MODES
            or not all(isinstance(w, str) for w in words) or not isinstance(out, str)):
        print("ffrtmp wrapper standby: not a call", file=sys.stderr)
        return None
    return words, out


def _redirect(out: str) -> None:
    """Become what a cold wrapper is from birth: stdin /dev/null, stdout and stderr ``out``."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDONLY)
    target = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    for fd, into in ((devnull, 0), (target, 1), (target, 2)):
        os.dup2(fd, into)
    os.close(devnull)
    os.close(target)
