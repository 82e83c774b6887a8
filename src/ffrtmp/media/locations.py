"""``store:///PATH``: the farm's store named in a job spec without its host and port.

``store:///in/a.mp4`` means ``FFRTMP_MEDIA_STORE_URL`` + ``/in/a.mp4``; the agent and the CLI
resolve it, so a job spec stays the same when the store moves.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit

STORE_SCHEME = "store"
_PREFIX = f"{STORE_SCHEME}://"


class NoStore(ValueError):
    """A ``store:`` URL where no store is configured (FFRTMP_MEDIA_STORE_URL is empty)."""


def is_presigned(url: str) -> bool:
    """A URL with a query string carries its own authorization (an S3-style signature)."""
    return bool(urlsplit(url).query)


def is_store_url(url: str) -> bool:
    return url.lower().startswith(_PREFIX)


def resolve(url: str, store_url: str | None) -> str:
    """The URL to send requests to: ``store:///p`` is the store's URL plus ``/p``; others as given."""
    if not is_store_url(url):
        return url
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError(f"a store URL names no host: {STORE_SCHEME}:///PATH, not {url}")
    if not store_url:
        raise NoStore(f"{url} names the media store, but none is configured (FFRTMP_MEDIA_STORE_URL)")
    return store_url.rstrip("/") + url[len(_PREFIX):]


def store_url_of(path: str) -> str:
    """``/in/x.mp4``, ``in/x.mp4`` or ``store:///in/x.mp4`` as ``store:///in/x.mp4``.

    A path that climbs out (``..``) or carries a query or fragment is a ValueError, as the
    master would refuse it in a job spec.
    """
    if is_store_url(path):
        if urlsplit(path).netloc:
            raise ValueError(f"a store URL names no host: {STORE_SCHEME}:///PATH, not {path}")
        path = path[len(_PREFIX):]
    if "?" in path or "#" in path:
        raise ValueError(f"a store path has no query or fragment: {path}")
    absolute = "/" + path.lstrip("/")
    if ".." in absolute.split("/"):
        raise ValueError(f"a store path may not contain '..': {path}")
    trailing = "/" if absolute.endswith("/") and absolute != "/" else ""
    return _PREFIX + posixpath.normpath(absolute).replace("//", "/") + trailing
