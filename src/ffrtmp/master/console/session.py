"""The console's session: who logged in (a fingerprint of their operator token) and its CSRF token.

The cookie's signing key is derived from the operator tokens, so every worker and every master
sharing those tokens accepts the same session with no extra secret file to create or copy, and
changing the tokens ends every session. The cookie holds an HMAC of the token, not the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ffrtmp.master.auth import _is_operator
from ffrtmp.master.context import current, of

SESSION_LIFETIME = timedelta(hours=12)
CSRF_HEADER = "X-Console-CSRF"
COOKIE_PATH = "/ui"
_KEY_LABEL = b"ffrtmp console session v1"


def signing_key(tokens: tuple[str, ...]) -> bytes:
    return hmac.new(_KEY_LABEL, "\0".join(sorted(tokens)).encode(), hashlib.sha256).digest()


def configure(app: Flask) -> None:
    """The session cookie's key and attributes, set once when the console is registered."""
    settings = of(app).settings
    app.secret_key = signing_key(settings.api_tokens)
    app.session_interface = ConsoleSessions()
    app.config.update(SESSION_COOKIE_NAME="ffrtmp_console", SESSION_COOKIE_PATH=COOKIE_PATH,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=bool(settings.tls_cert_file),
                      PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, opened only under the console's path: the browser sends it
    nowhere else, and opening one for every agent request cost each a new signer."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(COOKIE_PATH):
            return None  # Flask then makes its null session, as for an app with no key
        return super().open_session(app, request)


def _fingerprint(token: str) -> str:
    key = signing_key(current().settings.api_tokens)
    return hmac.new(key, b"operator:" + token.encode(), hashlib.sha256).hexdigest()


def log_in(token: str) -> bool:
    """Check ``token`` as the API does (constant-time); on success start a fresh session."""
    if not token or not _is_operator(token):
        return False
    session.clear()
    session.permanent = True
    session["op"] = _fingerprint(token)
    session["csrf"] = secrets.token_urlsafe(32)
    return True


def operator_token() -> str | None:
    """The operator token this session was opened with, if it is still one of the master's."""
    held: Any = session.get("op")
    if not isinstance(held, str):
        return None
    matches = [t for t in current().settings.api_tokens if hmac.compare_digest(_fingerprint(t), held)]
    return matches[0] if matches else None


def csrf_token() -> str:
    token: Any = session.get("csrf")
    return token if isinstance(token, str) else ""


def same_origin() -> bool:
    """A browser that names the origin of a POST names this very one (login included)."""
    origin = request.headers.get("Origin")
    return origin is None or origin.rstrip("/") == request.host_url.rstrip("/")


def csrf_ok(sent: str | None) -> bool:
    """A state-changing request comes from this origin and carries the session's CSRF token
    (SameSite=Strict already keeps the cookie off other sites' requests; this is the second lock)."""
    if not same_origin():
        return False
    expected = csrf_token()
    return bool(expected and sent) and hmac.compare_digest(expected.encode(), (sent or "").encode())
