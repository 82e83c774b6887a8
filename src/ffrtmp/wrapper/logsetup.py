"""The wrapper's logging: wrapper.log and stdout, every record stamped with its one job."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ffrtmp import logs
from ffrtmp.wrapper.cmdline import LOG_DIR, LOG_LEVEL, WrapperCall, setting_value

log = logging.getLogger("ffrtmp.wrapper")


def setup_logging(call: WrapperCall, environ: Mapping[str, str]) -> dict[str, Any]:
    """wrapper.log + stdout; stdout alone if no log file can be opened (the job still runs).

    A wrapper serves exactly one job, so every record it logs, from any module, is stamped
    with that job's ``job=``, ``attempt=`` and ``node=``. Returns those fields as ``extra``.
    """
    directory = setting_value(call.log_dir, LOG_DIR, environ)
    chosen_level = setting_value(call.log_level, LOG_LEVEL, environ)
    extra = logs.fields(job=call.job_id, attempt=call.attempt, node=call.node)
    problem = None
    try:
        logs.setup("wrapper", "wrapper.log", log_dir=directory, level=chosen_level)
    except OSError as exc:
        logs.setup_stdout(level=chosen_level)
        problem = exc
    for handler in logging.getLogger().handlers:
        handler.addFilter(_JobFields(extra))
    if problem is not None:
        log.error("cannot open wrapper.log (%s); logging to stdout only", problem)
    return extra


class _JobFields(logging.Filter):
    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__()
        self.values = dict(values)

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.values.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
