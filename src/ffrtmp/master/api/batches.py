"""Batch routes: a list of items, each checked and answered exactly as its single route would.

One request and one commit carry them all (``store.batch``): an agent's starts and results, an
operator's submits. An item that its single route would refuse is refused alone, in its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Response, current_app

from ffrtmp.contract import MAX_BATCH
from ffrtmp.master.errors import ApiError, Invalid
from ffrtmp.master.store.errors import StoreError, StoreUnavailable
from ffrtmp.validation import Field, list_of

T = TypeVar("T")
# a store's batch method: one outcome per item, in order, a refusal as its StoreError
BatchRun = Callable[[list[T]], Sequence[dict[str, Any] | StoreError]]


def items_field(*, required: bool = True) -> Field:
    """A body's list of up to ``MAX_BATCH`` items, each checked later by ``per_item``."""
    rule = list_of(lambda item, where: item, MAX_BATCH)
    return Field(rule, required=True) if required else Field(rule, default=[])


def item_body(item: Any) -> dict[str, Any]:
    """An item is checked as its single route checks a body, and refused alone (422)."""
    if not isinstance(item, dict):
        raise Invalid("body", "must be a JSON object")
    return item


def per_item(items: list[Any], check: Callable[[Any], T], run: BatchRun[T], *,
             ok: int = 200) -> list[dict[str, Any]]:
    """Check each item, run the valid ones as one batch, and answer every item in its place:
    ``{"status": ok, ...the single route's reply}`` or ``{"status", "error"}``. A store that
    cannot serve now fails the whole request (503, nothing committed), so it is resent whole."""
    entries: list[dict[str, Any] | None] = []
    todo: list[tuple[int, T]] = []
    for index, item in enumerate(items):
        try:
            todo.append((index, check(item)))
            entries.append(None)
        except StoreUnavailable:
            raise
        except (ApiError, StoreError) as exc:
            entries.append(_error_entry(exc))
    outcomes = run([args for _, args in todo]) if todo else []
    for (index, _), outcome in zip(todo, outcomes, strict=True):
        entries[index] = (_error_entry(outcome) if isinstance(outcome, StoreError)
                          else {"status": ok, **outcome})
    return [entry for entry in entries if entry is not None]


def _error_entry(exc: ApiError | StoreError) -> dict[str, Any]:
    """The item's error exactly as its single route would answer it, with that status."""
    response = current_app.handle_user_exception(exc)
    assert isinstance(response, Response)  # noqa: S101 -- both kinds have a handler (errors.py)
    return {"status": response.status_code, **response.get_json()}
