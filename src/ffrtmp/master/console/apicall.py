"""The console reaches the farm only through the API's own views, called in-process.

A call runs the view in a request context of its own, carrying the session's operator token as
its bearer token: the API's auth, validation, store calls and error envelopes apply unchanged,
and only the views listed here can be reached (no submit, no node removal, no agent routes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flask import current_app, request
from werkzeug.exceptions import NotFound

from ffrtmp.master.console.session import operator_token
from ffrtmp.master.errors import Unauthorized

READS = frozenset({"jobs.list_jobs", "jobs.show", "jobs.logs", "nodes.list_nodes", "nodes.show",
                   "stats.queue"})
ACTIONS = frozenset({"jobs.cancel", "jobs.retry", "nodes.drain", "nodes.undrain"})


def call(path: str, *, method: str = "GET", query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body the API answers at ``path``; its refusals are raised as the API raises them."""
    token = operator_token()
    if token is None:
        raise Unauthorized("unauthorized", "log in to the console first")
    allowed = READS if method == "GET" else ACTIONS
    # quoted: a decoded ``?`` or ``#`` from the console's own URL stays part of the path
    with current_app.test_request_context(quote(path, safe="/"), method=method,
                                          query_string=dict(query or {}),
                                          headers={"Authorization": f"Bearer {token}"}):
        rule = request.url_rule
        if request.routing_exception is not None or rule is None or rule.endpoint not in allowed:
            raise NotFound(f"the console serves no {method} {path}")
        view = current_app.view_functions[rule.endpoint]
        response = current_app.ensure_sync(view)(**(request.view_args or {}))
        body: dict[str, Any] = response.get_json()
        return body
