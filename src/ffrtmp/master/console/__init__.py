"""The operator's web console at ``/ui`` on the API port: server-rendered pages over the API.

One auth mechanism: the operator token. The login form checks it as the API does and keeps a
fingerprint of it in Flask's signed session cookie (path ``/ui``, HttpOnly, SameSite=Strict,
Secure under TLS), never in a URL. The pages and the console's JSON endpoints (``/ui/api/…``)
call the API's own views in-process with that token, so they share its validation, semantics
and errors; the API itself accepts only bearer tokens, never the cookie.
"""

from __future__ import annotations

from ffrtmp.master.console.views import bp

__all__ = ["bp"]
