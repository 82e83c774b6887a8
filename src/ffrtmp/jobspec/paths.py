"""Where media is: local paths normalised once and kept inside the media roots, and URLs.

Apart from the optional realpath check of media-root paths (symlink escapes) nothing in the
job spec does I/O.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from ffrtmp.validation import FieldError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1) if match else None


def network_url(url: str, where: str) -> str:
    """Check a URL with a host; returns its path (the part after host and port)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise FieldError(where, "is not a valid URL") from None
    if not parts.hostname:
        raise FieldError(where, f"a {parts.scheme}:// URL must name a host")
    if " " in url:
        raise FieldError(where, "must not contain spaces (percent-encode them)")
    return parts.path


STORE_PREFIX = "store:///"  # the farm's media store: the agent puts its URL in front of the path
_STORE_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]+$")


def remote_path(url: str, where: str) -> str:
    """The object path of an ``http(s)://`` or ``store:///`` URL (for its name and extension)."""
    if scheme(url) != "store":
        return network_url(url, where)
    if not url.startswith(STORE_PREFIX):
        raise FieldError(where, "a store URL must look like store:///path/in/the/store")
    path = url[len(STORE_PREFIX) - 1:]
    if not _STORE_PATH.match(path) or "//" in path:
        raise FieldError(where, "a store path may hold letters, digits and -._~ (percent-encode the "
                                "rest), with no query, fragment or empty segment")
    if ".." in path.split("/") or "." in path.split("/"):
        raise FieldError(where, "a store path must not contain '.' or '..' segments")
    return path


def has_query(url: str) -> bool:
    """Whether a URL carries a query string: a presigned URL's signature lives there."""
    return bool(urlsplit(url).query)


def local_path(url: str) -> str:
    """The filesystem path of a ``file:///`` URL or absolute path, normalised.

    A file URL is taken literally after ``file://`` (no percent-decoding), so what was
    validated is exactly what FFmpeg opens.
    """
    return normalise(url.removeprefix("file://"))


def normalise(path: str) -> str:
    """normpath, plus collapsing a leading ``//`` (the same directory as ``/`` on Linux)."""
    if path.startswith("/"):
        path = "/" + path.lstrip("/")
    return os.path.normpath(path)


def normalise_roots(media_roots: Sequence[str]) -> tuple[str, ...]:
    if isinstance(media_roots, str):
        raise TypeError("media_roots must be a sequence of paths, not one string")
    for root in media_roots:
        if not PurePosixPath(root).is_absolute():
            raise ValueError(f"media root {root!r} must be an absolute path")
    return tuple(os.path.normpath(root) for root in media_roots)


class Containment:
    """Decides whether a local path stays inside the media roots.

    The lexical check always applies. The realpath check applies to roots that exist on
    this host, so the master can validate paths on a node-only mount it does not have.
    """

    def __init__(self, roots: tuple[str, ...], check_filesystem: bool) -> None:
        self.roots = roots
        self.check_filesystem = check_filesystem

    def local_file(self, url: str, where: str) -> str:
        """Check a ``file:///`` URL or absolute path and return its normalised path."""
        if url.startswith("file:") and not url.startswith("file:///"):
            raise FieldError(where, "a file URL must look like file:///absolute/path")
        return self.check(url.removeprefix("file://"), where)

    def check(self, path: str, where: str) -> str:
        if not path.startswith("/"):
            raise FieldError(where, "must be an absolute path")
        if ".." in path.split("/"):
            raise FieldError(where, "must not contain '..' components")
        normal = normalise(path)
        if not self.roots:
            raise FieldError(where, "local files are not allowed: no media roots are configured")
        lexical = [root for root in self.roots if _strictly_inside(normal, root)]
        if not lexical:
            raise FieldError(where, f"path escapes the media roots {', '.join(self.roots)}")
        if self.check_filesystem and not self._resolves_inside(normal, lexical):
            raise FieldError(where, f"path escapes the media roots {', '.join(self.roots)} "
                                    "through a symlink")
        return normal

    def _resolves_inside(self, normal: str, lexical: list[str]) -> bool:
        try:
            if not all(_exists(root) for root in lexical):
                return True  # the root isn't mounted here: only the lexical check can apply
            real = os.path.realpath(normal)
            real_roots = [os.path.realpath(root) for root in self.roots if _exists(root)]
        except (OSError, ValueError):
            return False
        return any(_strictly_inside(real, root) for root in real_roots)


# Path.exists() answers False for these and raises any other error; so does _exists.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _exists(path: str) -> bool:
    """``Path(path).exists()`` for a normalised path, without building a Path on every submit."""
    try:
        os.stat(path)  # noqa: PTH116 - the point is to skip the Path object
    except OSError as exc:
        if exc.errno not in _MISSING:
            raise
        return False
    except ValueError:  # a NUL in the path
        return False
    return True


def _strictly_inside(path: str, root: str) -> bool:
    return path != root and os.path.commonpath([path, root]) == root
