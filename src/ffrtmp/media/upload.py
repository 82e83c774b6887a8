"""Putting one local file at a URL so that a partial object never appears there.

WebDAV (the farm's store, any WebDAV server): MKCOL the missing parents from the top, PUT to
``.NAME.TAG.part`` beside the final name, HEAD it and compare the size, MOVE it into place,
HEAD the final URL and compare again. A presigned URL (one with a query string) binds its
method and path, so it gets one PUT with ``Content-MD5``: the object appears only complete.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from ffrtmp.media.body import FileBody
from ffrtmp.media.digests import content_md5, file_digest
from ffrtmp.media.errors import Canceled, Refused, TransferError, Unavailable
from ffrtmp.media.transport import Transport

CREATED = (200, 201, 204)


def temporary_url(url: str, tag: str) -> str:
    """``…/dir/.NAME.TAG.part``: hidden from listings, in the same collection as ``url``."""
    parts = urlsplit(url)
    directory, _, name = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{directory}/.{name}.{tag}.part", "", ""))


def collections_of(url: str) -> list[str]:
    """The parent collection URLs of ``url``, top first, each ending ``/``."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/")[:-1] if s]
    return [urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments[:i]) + "/", "", ""))
            for i in range(1, len(segments) + 1)]


def make_collections(transport: Transport, url: str, known: set[str]) -> None:
    """MKCOL each parent not made before (201 made, 405 there already).

    Any other refusal but a login's is left for the PUT to answer: a server may refuse MKCOL
    (or not know it) and still take the PUT, and the PUT's status is the one worth reporting.
    """
    for collection in collections_of(url):
        if collection in known:
            continue
        try:
            transport.send("MKCOL", collection, (200, 201, 204, 405))
        except Refused as exc:
            if exc.status in (401, 407):
                raise
            continue
        except Unavailable as exc:
            if not exc.why.startswith("501"):
                raise
            continue
        known.add(collection)


def put(transport: Transport, local: Path, url: str, headers: dict[str, str],
        progress: Callable[[int], None] | None, cancel: threading.Event | None) -> requests.Response:
    """One PUT of ``local``'s bytes, streamed with its Content-Length (never read whole)."""
    body = FileBody(local, progress, cancel)
    try:
        headers = {**headers, "Content-Length": str(body.size)}
        return transport.send("PUT", url, CREATED, headers=headers, data=body, cancel=cancel)
    finally:
        body.close()


def verify_size(transport: Transport, url: str, expected: int) -> None:
    """HEAD ``url``: its Content-Length must be ``expected`` (else Unavailable: send it again)."""
    response = transport.send("HEAD", url, (200,))
    length = response.headers.get("Content-Length")
    if length != str(expected):
        raise Unavailable("HEAD", url, f"size {length} after upload, expected {expected}")


def upload_webdav(transport: Transport, local: Path, url: str, tag: str, known: set[str],
                  progress: Callable[[int], None] | None, cancel: threading.Event | None) -> int:
    """The WebDAV protocol (module docstring); the temporary object is deleted on failure."""
    make_collections(transport, url, known)
    temporary = temporary_url(url, tag)
    try:
        size = local.stat().st_size
        put(transport, local, temporary, {}, progress, cancel)
        verify_size(transport, temporary, size)
        if cancel is not None and cancel.is_set():  # the body may have been sent before the cancel
            raise Canceled("PUT", url)
        transport.send("MOVE", temporary, (201, 204), headers={"Destination": url, "Overwrite": "T"})
    except TransferError:
        with contextlib.suppress(TransferError):
            transport.send("DELETE", temporary, (200, 204, 404), timeout=(2.0, 5.0))
        raise
    verify_size(transport, url, size)
    return size


def upload_presigned(transport: Transport, local: Path, url: str,
                     progress: Callable[[int], None] | None, cancel: threading.Event | None) -> int:
    """One PUT with Content-MD5; an md5 ETag that differs is Unavailable (sent again)."""
    md5 = file_digest(local, "md5")
    size = local.stat().st_size
    response = put(transport, local, url, {"Content-MD5": content_md5(md5)}, progress, cancel)
    etag = response.headers.get("ETag", "").strip('"').lower()
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) and etag != md5.hex():
        raise Unavailable("PUT", url, f"ETag {etag} is not the md5 of what was sent")
    return size
