"""Request bodies and query strings: known fields of known types, or a 400/422 naming the field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import request

from ffrtmp.master.errors import ApiError, Invalid

MAX_DEPTH = 32  # no request the API knows nests deeper than a handful of levels
_TOO_DEEP = f"body is nested too deeply (at most {MAX_DEPTH} levels)"
# NUL: PostgreSQL's text refuses it (SQLite stores it). Lone surrogates: valid as JSON escapes,
# but not Unicode, so UTF-8 drivers refuse them. Refused alike, whichever store runs.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_UNSTORABLE_TEXT = "NUL (\\u0000) or a lone surrogate (\\ud800-\\udfff)"
_QUERY_INT = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²"


def json_body(*, allow_empty: bool = False) -> dict[str, Any]:
    """The request's JSON object; every route reads its body here, so every route is hardened."""
    raw = request.get_data(cache=True)
    if not raw and allow_empty:
        return {}
    if not request.is_json and raw:
        raise ApiError("bad_request", "body must be JSON (Content-Type: application/json)")
    body = decode(raw)
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    return body


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def decode(raw: bytes) -> Any:
    """Strict RFC 8259 JSON that every store can hold: no NaN/Infinity, bounded nesting (the
    decoder recurses, so deep input would raise RecursionError), no NUL or lone surrogate, no
    number that only fits as infinity (it would be echoed back as ``Infinity``, not JSON)."""
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise ApiError("bad_request", _TOO_DEEP) from None
    except ValueError:  # also UnicodeDecodeError and integers too long to convert
        raise ApiError("bad_request", "body is not valid JSON") from None
    _check_tree(body)
    return body


def _check_tree(body: Any) -> None:
    """Walk without recursion, naming a culprit the way ``fields_of`` does (``a.b[2]``)."""
    stack: list[tuple[Any, str, int]] = [(body, "body", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError("bad_request", _TOO_DEEP)
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise Invalid(path, f"must not contain {_UNSTORABLE_TEXT}")
        if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
            raise Invalid(path, "must be a number a double can hold")
        if isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    raise Invalid(path, f"has a key with {_UNSTORABLE_TEXT}")
                stack.append((item, key if path == "body" else f"{path}.{key}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def query_text(name: str) -> str | None:
    """A text query parameter, held to what the store can hold (see ``_UNSTORABLE``)."""
    raw = request.args.get(name)
    if raw is not None and _UNSTORABLE.search(raw):
        raise Invalid(name, f"must not contain {_UNSTORABLE_TEXT}")
    return raw


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter: malformed is 400 (like a body that is not JSON), out of range 422."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _QUERY_INT.fullmatch(raw):
        raise ApiError("bad_request", f"{name}: must be an integer written in ASCII digits",
                       {"field": name})
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(name, f"must be an integer between {low} and {high}")
    return value


@dataclass(frozen=True)
class Field:
    kind: Callable[[Any, str], Any]
    required: bool = False
    default: Any = None


def fields_of(body: Mapping[str, Any], schema: Mapping[str, Field], prefix: str = "") -> dict[str, Any]:
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise Invalid(prefix + unknown[0], "unknown field")
    out = {}
    for name, f in schema.items():
        path = prefix + name
        if name not in body or body[name] is None:
            if f.required:
                raise Invalid(path, "is required")
            out[name] = f.default
            continue
        out[name] = f.kind(body[name], path)
    return out


# --- field kinds: each checks one value and returns it ---

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def integer(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(path, "must be an integer")
        if not low <= value <= high:
            raise Invalid(path, f"must be between {low} and {high}")
        return value

    return check


def number(low: float, high: float) -> Callable[[Any, str], float]:
    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(path, "must be a number")
        if not low <= value <= high:
            raise Invalid(path, f"must be between {low} and {high}")
        return float(value)

    return check


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(path, "must be true or false")
    return value


def text(max_len: int) -> Callable[[Any, str], str]:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise Invalid(path, "must be a string")
        if len(value) > max_len:
            raise Invalid(path, f"must be at most {max_len} characters")
        return value

    return check


def name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise Invalid(path, "must be 1-128 characters of letters, digits and _.:-")
    return value


def one_of(*choices: str) -> Callable[[Any, str], str]:
    def check(value: Any, path: str) -> str:
        if value not in choices:
            raise Invalid(path, f"must be one of {', '.join(choices)}")
        return value

    return check


def names(max_items: int) -> Callable[[Any, str], list[str]]:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            raise Invalid(path, "must be a list of names")
        if len(value) > max_items:
            raise Invalid(path, f"must have at most {max_items} items")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not _TOKEN.fullmatch(item):
                raise Invalid(f"{path}[{i}]", "must be 1-128 characters of letters, digits and _.-")
        return value

    return check


def labels(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 32:
        raise Invalid(path, "must be an object of at most 32 string labels")
    for key, item in value.items():
        if not _TOKEN.fullmatch(key) or not isinstance(item, str) or len(item) > 256:
            raise Invalid(f"{path}.{key}", "labels are name: string (at most 256 characters)")
    return value


def obj(schema: Mapping[str, Field]) -> Callable[[Any, str], dict[str, Any]]:
    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(path, "must be an object")
        return fields_of(value, schema, prefix=path + ".")

    return check


def list_of(item: Callable[[Any, str], Any], max_items: int) -> Callable[[Any, str], list[Any]]:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(path, "must be a list")
        if len(value) > max_items:
            raise Invalid(path, f"must have at most {max_items} items")
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return check


def free_object(max_keys: int) -> Callable[[Any, str], dict[str, Any]]:
    """A small object of scalars (progress figures); kept as given."""

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > max_keys:
            raise Invalid(path, f"must be an object of at most {max_keys} fields")
        for key, item in value.items():
            if not isinstance(item, str | int | float | bool) and item is not None:
                raise Invalid(f"{path}.{key}", "must be a string, number, boolean or null")
            if isinstance(item, str) and len(item) > 256:
                raise Invalid(f"{path}.{key}", "must be at most 256 characters")
        return value

    return check
