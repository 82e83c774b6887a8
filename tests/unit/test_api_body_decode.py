"""Request bodies: ``validate.decode`` skips its tree walk when the bytes prove it would pass.

The answer must be exactly the walking decoder's, whatever the bytes: the same body, or the
same 400/422 naming the same field. The reference below is that decoder (json.loads, then
the walk over every value).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffrtmp.master import validate
from ffrtmp.master.errors import ApiError


def reference(raw: bytes) -> Any:
    try:
        body = json.loads(raw, parse_constant=validate._not_json)
    except RecursionError:
        raise ApiError("bad_request", validate._TOO_DEEP) from None
    except ValueError:
        raise ApiError("bad_request", "body is not valid JSON") from None
    validate._check_tree(body)
    return body


def outcome(decoder: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "body", decoder(raw)
    except ApiError as exc:
        return "error", (exc.status, exc.code, exc.message, exc.details)


def assert_same(raw: bytes) -> None:
    got, want = outcome(validate.decode, raw), outcome(reference, raw)
    if got[0] == want[0] == "body":  # NaN never gets this far; compare as JSON text
        assert json.dumps(got[1]) == json.dumps(want[1])
    else:
        assert got == want, raw


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("raw", [
    nested(31), nested(32), nested(33), b"[" * 32 + b"]" * 32, b"[" * 33 + b"]" * 33,
    b'{"a":"x[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',  # brackets in a string
    b'{"a":1e400}', b'{"a":[1,{"b":-1e999}]}', b'{"a":"\\u0000","b":1e400}',
    b'{"a":' + b"1" * 400 + b'.0}', b'{"a":' + b"1" * 400 + b"}",  # a float, then an int
    b'{"a":1.5,"b":2e10,"c":-0.0}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
    '{"a":"\ud800"}'.encode("utf-8", "surrogatepass"),  # raw UTF-8 of a lone surrogate
    '{"\udfff":1}'.encode("utf-8", "surrogatepass"),
    '{"a":"caf\u00e9 \U0001f600"}'.encode(), b'{"a":"\\ud83d\\ude00"}', b'{"a":"\\\\u0000"}',
    b'{"a":"\\u0000"}', '{"a":"\\u0000"}'.encode("utf-16"), '{"a":"\x00"}'.encode("utf-16-le"),
    '{"a":1}'.encode("utf-32"), b"\xef\xbb\xbf{\"a\":1}", b"", b"   ", b"{", b"[1,]", b"\xff\xfe",
    b'"text"', b"[]", b"null", b'{"a":"\x00"}',
])
def test_every_crafted_body_gets_the_walking_decoders_answer(raw: bytes) -> None:
    assert_same(raw)


def test_a_deep_body_is_refused_as_too_deep_not_as_a_crash() -> None:
    assert outcome(validate.decode, nested(5000))[1][2] == validate._TOO_DEEP


leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
          | st.text(max_size=6) | st.sampled_from(["\x00", "\ud800", "\udc00x", "1e400"]))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(values, st.booleans(), st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-16-be"]),
       st.sampled_from(["", " 1e400", "1" * 320 + ".5"]))
def test_any_value_in_any_encoding_gets_the_same_answer(value: Any, ascii_only: bool,
                                                       encoding: str, number: str) -> None:
    text = json.dumps({"v": value}, ensure_ascii=ascii_only)
    if number:
        text = text[:-1] + f', "n": {number}}}'
    assert_same(text.encode(encoding, "surrogatepass"))
