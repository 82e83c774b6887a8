"""One pooled HTTP session, its credentials, and how each answer is classified.

Every request goes through ``Transport.send``: a connection error, a timeout, a 5xx, 408 or
429 is ``Unavailable`` (the caller may try again later); any other status outside the
expected ones is ``Refused``. Nothing here retries on its own: a PUT retried behind the
caller's back would hide how often a store fails.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ffrtmp.media.credentials import Credentials
from ffrtmp.media.errors import Canceled, Refused, Unavailable

TRANSIENT_STATUSES = frozenset({408, 429})


class _NoAuth(AuthBase):
    """No credentials, and none from ``~/.netrc`` either (requests would look there)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _Session(requests.Session):
    """A session whose redirects carry a login only to a host the credentials name."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self.credentials = credentials

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        headers = prepared_request.headers
        strip = cast(Callable[[str, str], bool], self.should_strip_auth)  # untyped in the stubs
        if "Authorization" in headers and strip(response.request.url or "", prepared_request.url or ""):
            del headers["Authorization"]
        login = self.credentials.auth_for(prepared_request.url or "")
        if login and "Authorization" not in headers:
            prepared_request.prepare_auth(HTTPBasicAuth(*login))


def is_transient(status: int) -> bool:
    return status >= 500 or status in TRANSIENT_STATUSES


def describe(exc: BaseException) -> str:
    """A short reason for a transport error, without the URL (requests' text quotes the path)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno).lower()
        if isinstance(current, TimeoutError | requests.Timeout):
            return "timed out"
        nested = [a for a in (getattr(current, "reason", None), *getattr(current, "args", ()))
                  if isinstance(a, BaseException)]
        current = current.__cause__ or current.__context__ or (nested[0] if nested else None)
    if isinstance(exc, requests.ConnectionError):
        return os.strerror(errno.ECONNABORTED).lower()
    return type(exc).__name__


class Transport:
    """The session the media client sends every request through."""

    def __init__(self, credentials: Credentials, timeout_s: float) -> None:
        self.credentials = credentials
        self.timeout = (min(10.0, timeout_s), timeout_s)  # (connect, read between bytes)
        self.session = _Session(credentials)

    def auth(self, url: str) -> AuthBase:
        login = self.credentials.auth_for(url)
        return HTTPBasicAuth(*login) if login else _NoAuth()

    def send(self, method: str, url: str, expect: Collection[int], *,
             headers: Mapping[str, str] | None = None, data: Any = None, stream: bool = False,
             cancel: threading.Event | None = None, timeout: Any = None) -> requests.Response:
        """The response when its status is in ``expect``; otherwise Refused or Unavailable."""
        try:
            response = self.session.request(
                method, url, headers=dict(headers or {}), data=data, stream=stream,
                auth=self.auth(url), timeout=timeout or self.timeout,
                allow_redirects=method in ("GET", "HEAD"))
        except Exception as exc:
            if cancel is not None and cancel.is_set():
                raise Canceled(method, url) from None
            if isinstance(exc, requests.RequestException | OSError):
                raise Unavailable(method, url, describe(exc)) from None
            raise
        if response.status_code in expect:
            return response
        response.close()
        if is_transient(response.status_code):
            raise Unavailable(method, url, f"{response.status_code} {response.reason or ''}".strip())
        raise Refused(method, url, response.status_code, response.reason or "")

    def close(self) -> None:
        self.session.close()
