"""What ``attach`` does first, in this order: parse, the mode's own check, logging, the job
directory. A check that refuses (no such process) does so before anything is logged or
created. (``run`` starts its workload before logging: see there.)"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ffrtmp.layout import JobDir, StateDir
from ffrtmp.wrapper.cmdline import Mode, WrapperCall, parse
from ffrtmp.wrapper.jobdir import open_job_dir
from ffrtmp.wrapper.logsetup import setup_logging
from ffrtmp.wrapper.notes import Notes

log = logging.getLogger("ffrtmp.wrapper")

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
    notes = Notes()
    opened = open_job_dir(call, notes)
    notes.emit(log, extra)
    if isinstance(opened, int):
        return opened
    state_dir, job_dir = opened
    return body(call, checked, StateDir(Path(state_dir)), JobDir(Path(job_dir)), extra)
