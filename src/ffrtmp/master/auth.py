"""Who may call a route: operators (tokens from a file) or one node (its own credential).

Every route states its caller with a decorator. Comparisons of secrets are constant-time;
node credentials are stored hashed and found by their hash.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import g, request

from ffrtmp.master.context import current
from ffrtmp.master.errors import Forbidden, Unauthorized

P = ParamSpec("P")
R = TypeVar("R")


def _bearer() -> str:
    header: str = request.environ.get("HTTP_AUTHORIZATION", "")  # request.headers reads the same
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("unauthorized", "missing bearer token")
    return token.strip()


def _is_operator(token: str) -> bool:
    tokens = current().settings.api_tokens
    return any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens)


def _node_of(token: str) -> str | None:
    return current().store.node_for_credential(token)


def operator_required(view: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _bearer()
        if _is_operator(token):
            g.caller = "operator"
            return view(*args, **kwargs)
        if _node_of(token):
            raise Forbidden("forbidden", "node credentials cannot use operator routes")
        raise Unauthorized("unauthorized", "invalid token")

    return wrapped


def node_required(view: Callable[P, R]) -> Callable[P, R]:
    """The caller is a node; ``g.node_id`` is who it is. A ``node_id`` URL part must match."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _bearer()
        node_id = _node_of(token)
        if node_id is None:
            if _is_operator(token):
                raise Forbidden("forbidden", "operator tokens cannot use agent routes")
            raise Unauthorized("unauthorized", "unknown node credential; register again")
        if "node_id" in kwargs and kwargs["node_id"] != node_id:
            raise Forbidden("forbidden", "a node can act only as itself")
        g.node_id = node_id
        return view(*args, **kwargs)

    return wrapped


def enrollment_required(view: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _bearer()
        expected = current().settings.enroll_token
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("unauthorized", "invalid enrollment token")
        return view(*args, **kwargs)

    return wrapped
