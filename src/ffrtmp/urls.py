"""What of a URL may be shown: never its password or its query string.

A presigned URL carries its signature in the query string, and a URL may carry a password
in its user part: both are credentials. Every log line, and every view of a job, shows a
URL through ``redact`` (or free text through ``redact_text``), so neither can leak.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"
# A URL in free text: scheme://… up to whitespace or a quote, less the punctuation that ends
# it as prose ("cannot open postgresql://…?sslmode=x: reason"), which stays after it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")


def redact(url: str) -> str:
    """``url`` with any password and query string replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0] + (f"?{REDACTED}" if "?" in url else "")
    user, _, host = parts.netloc.rpartition("@")
    if not parts.query and ":" not in user:
        return url  # nothing to hide: exactly as given
    netloc = f"{user.split(':', 1)[0]}:{REDACTED}@{host}" if ":" in user else parts.netloc
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL in ``text`` redacted; text without ``://`` is returned as it is (fast)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)
