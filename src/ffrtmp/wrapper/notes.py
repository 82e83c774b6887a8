"""Log records made before logging is set up, kept to be logged once it is.

``run`` starts the workload before it imports logging (and the rest), so what it has to say
about the job directory or the cgroup on the way waits here, and is logged, with the job's
fields and in the same words, right after.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

WARNING, ERROR = 30, 40  # logging's levels, without importing logging


class Notes:
    def __init__(self) -> None:
        self.records: list[tuple[int, str, tuple[object, ...]]] = []

    def warning(self, message: str, *args: object) -> None:
        self.records.append((WARNING, message, args))

    def error(self, message: str, *args: object) -> None:
        self.records.append((ERROR, message, args))

    def emit(self, log: logging.Logger, extra: dict[str, Any]) -> None:
        """Log every record kept so far, oldest first, and forget them."""
        for level, message, args in self.records:
            log.log(level, message, *args, extra=extra)
        self.records.clear()
