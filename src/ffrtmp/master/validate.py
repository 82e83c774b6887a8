"""Request bodies and query strings: known fields of known types, or a 400/422 naming the field.

The field checks themselves are ``ffrtmp.validation``, shared with the job spec; this is the
Flask side: reading the request, and turning a FieldError into the API's 422.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, NoReturn, overload

from flask import request

from ffrtmp import validation
from ffrtmp.master.errors import ApiError, Invalid
from ffrtmp.validation import Field, FieldError

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


class _NotFinite(Exception):
    """A number that only fits as infinity (1e400): the walk then finds and names it."""


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite
    return value


# Built once: json.loads with any option builds a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
_WALKED_DECODER = json.JSONDecoder(parse_constant=_not_json)
# What a body must hold for the walk to find anything to refuse: a NUL or a lone surrogate is
# written as a \u escape, a NUL byte (also in UTF-16/32) or UTF-8's surrogate lead byte 0xED.
_MAY_HOLD_UNSTORABLE = re.compile(rb"[\x00\xed]|\\u")


def decode(raw: bytes) -> Any:
    """Strict RFC 8259 JSON that every store can hold: no NaN/Infinity, bounded nesting (the
    decoder recurses, so deep input would raise RecursionError), no NUL or lone surrogate, no
    number that only fits as infinity (it would be echoed back as ``Infinity``, not JSON).

    The tree is walked only when the bytes could hold something it refuses: more brackets
    than ``MAX_DEPTH`` levels, an escape or byte that may be a NUL or surrogate, an infinite
    number; otherwise the walk could only pass, and most bodies skip it."""
    try:
        body = _loads(raw, _DECODER)
    except _NotFinite:
        body = _loads(raw, _WALKED_DECODER)
    else:
        if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and not _MAY_HOLD_UNSTORABLE.search(raw):
            return body
    _check_tree(body)
    return body


def _loads(raw: bytes, decoder: json.JSONDecoder) -> Any:
    """``json.loads(raw)`` with ``decoder``, answering the API's 400 for what is not JSON."""
    try:
        return decoder.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError:
        raise ApiError("bad_request", _TOO_DEEP) from None
    except ValueError:  # also UnicodeDecodeError and integers too long to convert
        raise ApiError("bad_request", "body is not valid JSON") from None


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


@overload
def query_int(name: str, default: int, low: int, high: int) -> int: ...
@overload
def query_int(name: str, default: None, low: int, high: int) -> int | None: ...
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


def fields_of(body: Mapping[str, Any], schema: Mapping[str, Field]) -> dict[str, Any]:
    """The body's fields checked against ``schema``; a bad one is a 422 naming it."""
    try:
        return validation.fields_of(body, schema)
    except FieldError as exc:
        raise Invalid(exc.field, exc.message) from None
