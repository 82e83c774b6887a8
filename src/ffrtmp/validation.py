"""Checks for untrusted JSON: each returns the value it accepts or raises FieldError naming it.

The job spec parser and the agent-facing API share these, so a capability, a node name or a
codec is held to the same rule wherever it arrives. No Flask here: the master turns a
FieldError into its 422, the job spec into a SpecError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Check = Callable[[Any, str], T]

# Patterns are used with fullmatch: a "$" anchor would accept a trailing newline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldError(ValueError):
    """A value is invalid; ``field`` is its path (``outputs[1].preset``, ``running[0].job_id``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[FieldError], tuple[str, str]]:
        return (type(self), (self.field, self.message))


@dataclass(frozen=True)
class NameRule:
    """One kind of name: what it may contain and how to say so."""

    pattern: re.Pattern[str]
    usage: str

    def __call__(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise FieldError(where, self.usage)
        return value


# An encoder or hwaccel a node reports, and a job's ``requires``: the same names.
CAPABILITY = NameRule(re.compile(r"[A-Za-z0-9_.-]{1,64}"), "must be a capability name such as "
                      "h264_nvenc (letters, digits, _ . -, 1-64)")
# A node's chosen name, and the ids an agent echoes back.
NODE_NAME = NameRule(re.compile(r"[A-Za-z0-9_.:-]{1,128}"),
                     "must be 1-128 characters of letters, digits and _.:-")
# A job id as the master mints it (``j-`` and hex), as loose as its API route: a split job's
# children carry their parent's, and it names the directory of their intermediates.
JOB_ID = NameRule(re.compile(r"j-[0-9A-Za-z]{1,64}"), "must be a job id such as j-0123456789ab")
LABEL_KEY = NameRule(re.compile(r"[A-Za-z0-9_.-]{1,128}"),
                     "must be 1-128 characters of letters, digits and _.-")
# FFmpeg encoder names; also what keeps an option like "-f" out of a codec field.
CODEC = NameRule(re.compile(r"[a-z0-9_]{1,32}"), "must be an FFmpeg encoder name such as "
                 "libx264, aac or copy (a-z, 0-9, _)")


def name_list(rule: NameRule, max_items: int, *, what: str = "names",
              too_many: str | None = None) -> Check[list[str]]:
    """A list of names, each held to ``rule``."""

    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, list):
            raise FieldError(where, f"must be a list of {what}")
        if len(value) > max_items:
            raise FieldError(where, too_many or f"must have at most {max_items} items")
        return [rule(item, f"{where}[{index}]") for index, item in enumerate(value)]

    return check


def one_of(*choices: str) -> Check[str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise FieldError(where, f"must be one of {', '.join(choices)}")
        return value

    return check


def text(max_chars: int, *, strict: bool = False) -> Check[str]:
    """A string; ``strict`` also refuses empty text and control characters (one-line labels)."""

    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise FieldError(where, "must be a string")
        if strict and not value:
            raise FieldError(where, "must not be empty")
        if len(value) > max_chars:
            raise FieldError(where, f"must be at most {max_chars} characters")
        if strict:
            _printable_utf8(value, where)
        return value

    return check


def _printable_utf8(value: str, where: str) -> None:
    if _CONTROL.search(value):
        raise FieldError(where, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(where, "must be valid UTF-8 text") from None


def integer(low: int, high: int) -> Check[int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(where, "must be an integer")
        if not low <= value <= high:
            raise FieldError(where, f"must be between {low} and {high}")
        return int(value)

    return check


def number(low: float, high: float) -> Check[float]:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(where, "must be a number")
        if not low <= value <= high:
            raise FieldError(where, f"must be between {low} and {high}")
        return float(value)

    return check


def finite_number(value: Any, where: str) -> float:
    """JSON numbers only: bool is not a number, NaN and infinities are not numbers either."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(where, "must be a number")
    if isinstance(value, int):  # huge ints can't become floats; they fail range checks anyway
        if abs(value) <= 1 << 53:
            return float(value)
        return math.inf if value > 0 else -math.inf
    if not math.isfinite(value):
        raise FieldError(where, "must be a finite number")
    return float(value)


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(where, "must be true or false")
    return value


def labels(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 32:
        raise FieldError(where, "must be an object of at most 32 string labels")
    for key, item in value.items():
        if not LABEL_KEY.pattern.fullmatch(key) or not isinstance(item, str) or len(item) > 256:
            raise FieldError(f"{where}.{key}", "labels are name: string (at most 256 characters)")
    return value


def free_object(max_keys: int) -> Check[dict[str, Any]]:
    """A small object of scalars (progress figures); kept as given."""

    def check(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > max_keys:
            raise FieldError(where, f"must be an object of at most {max_keys} fields")
        for key, item in value.items():
            if not isinstance(item, str | int | float | bool) and item is not None:
                raise FieldError(f"{where}.{key}", "must be a string, number, boolean or null")
            if isinstance(item, str) and len(item) > 256:
                raise FieldError(f"{where}.{key}", "must be at most 256 characters")
        return value

    return check


def list_of(item: Check[T], max_items: int) -> Check[list[T]]:
    def check(value: Any, where: str) -> list[T]:
        if not isinstance(value, list):
            raise FieldError(where, "must be a list")
        if len(value) > max_items:
            raise FieldError(where, f"must have at most {max_items} items")
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return check


# --- objects ---------------------------------------------------------------------------------


def string_keys(value: Any, where: str) -> Mapping[str, Any]:
    """A JSON object whose keys are all strings (Python callers can pass other mappings)."""
    if not isinstance(value, Mapping):
        raise FieldError(where, "must be a JSON object")
    for key in value:
        if not isinstance(key, str):
            raise FieldError(where, f"has a non-string key {key!r}")
    return value


def known_fields(doc: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
    """Refuse a field ``allowed`` does not name, saying which ones exist."""
    for key in doc:
        if not key:
            raise FieldError(prefix.rstrip(".") or "spec", "has a field with an empty name")
        if key not in allowed:
            raise FieldError(f"{prefix}{key}", f"is not a known field; expected one of "
                                               f"{', '.join(allowed)}")


@dataclass(frozen=True)
class Field:
    """One field of a request body: its check, and what a missing (or null) value means."""

    kind: Check[Any]
    required: bool = False
    default: Any = None


def fields_of(body: Mapping[str, Any], schema: Mapping[str, Field],
              prefix: str = "") -> dict[str, Any]:
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise FieldError(prefix + unknown[0], "unknown field")
    out = {}
    for name, spec in schema.items():
        path = prefix + name
        if name not in body or body[name] is None:
            if spec.required:
                raise FieldError(path, "is required")
            out[name] = spec.default
            continue
        out[name] = spec.kind(body[name], path)
    return out


def obj(schema: Mapping[str, Field]) -> Check[dict[str, Any]]:
    def check(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise FieldError(where, "must be an object")
        return fields_of(value, schema, prefix=where + ".")

    return check
