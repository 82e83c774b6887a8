"""What the store refuses, named for the lifecycle rule that refuses it.

The store knows nothing of HTTP: ``ffrtmp.master.errors`` maps each class to a status
(404, 409, 403, 503), so the names here never clash with the API's own errors.
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """A request the lifecycle rules refuse; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class RecordNotFound(StoreError):
    """No job or node with that id."""


class StateConflict(StoreError):
    """The record exists, but its state refuses the change (finished, stale, busy, taken)."""


class NotPermitted(StoreError):
    """The caller may not act on this record (another node's attempt)."""


class StoreUnavailable(StoreError):
    """The database cannot serve a request now (full, read-only, busy, away): a 503 to retry.

    Codes: ``store_full``, ``store_read_only``, ``store_busy``, ``store_unavailable``. Each
    dialect names its driver's errors in one place (``_unavailable_code``).
    """

    def __init__(self, code: str, cause: BaseException) -> None:
        super().__init__(code, f"the database cannot serve this now: {first_line(cause)}")


def first_line(exc: BaseException) -> str:
    """A driver's message can span lines (context, hints); answers and probes show the first."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
