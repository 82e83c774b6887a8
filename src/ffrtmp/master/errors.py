"""API errors: raised in views, rendered in one place as ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ffrtmp.master.store.errors import (
    NotPermitted,
    RecordNotFound,
    StateConflict,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

# What each store refusal means over HTTP; any other StoreError is a conflict.
_STORE_STATUS: dict[type[StoreError], int] = {
    RecordNotFound: 404, StateConflict: 409, NotPermitted: 403, StoreUnavailable: 503}


class ApiError(Exception):
    status = 400

    def __init__(self, code: str, message: str, details: Any = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details
        if status is not None:
            self.status = status


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class Invalid(ApiError):
    """A well-formed request whose content is wrong; ``details.field`` names the culprit."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__("invalid", f"{field}: {message}", {"field": field})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error envelope; the gunicorn worker writes it too, for requests Flask never sees."""
    return {"error": {"code": code, "message": message, "details": details}}


def code_for(reason: str) -> str:
    """An HTTP reason phrase as an error code: "URI Too Long" -> "uri_too_long"."""
    return reason.lower().replace(" ", "_")


def envelope(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = envelope(exc.status, exc.code, exc.message, exc.details)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="ffrtmp"'
        return response

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError) -> Response:
        status = next((s for kind, s in _STORE_STATUS.items() if isinstance(exc, kind)), 409)
        return envelope(status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = code_for(exc.name or "error")
        response = envelope(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_response().headers.items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return envelope(500, "internal", "internal error; see the master log")
