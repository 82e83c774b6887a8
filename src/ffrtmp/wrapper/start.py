"""What both entry points do first, in this order: parse, the mode's own check, logging, the
job directory. A check that refuses (attach: no such process) does so before anything is
logged or created."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper.cmdline import Mode, WrapperCall, parse
from ffrtmp.wrapper.jobdir import open_job_dir
from ffrtmp.wrapper.logsetup import setup_logging

T = TypeVar("T")
Body = Callable[[WrapperCall, T, StateDir, JobDir, dict[str, Any]], int]


def wrapper_main(mode: Mode, argv: list[str], check: Callable[[WrapperCall], T | int],
                 body: Body[T]) -> int:
    """The exit status: parse's, the check's (an int refuses), the job dir's or ``body``'s."""
    call = parse(mode, argv)
    if isinstance(call, int):
        return call
    checked = check(call)
    if isinstance(checked, int):
        return checked
    extra = setup_logging(call, os.environ)
    opened = open_job_dir(call, extra)
    if isinstance(opened, int):
        return opened
    state_dir, paths = opened
    return body(call, checked, state_dir, paths, extra)
