"""The media client the agent and the CLI use: one try of each operation, classified errors.

Retrying is the caller's: ``Unavailable`` may succeed later (``backoff.delays``),
``Refused`` will not, ``Canceled`` means the caller stopped it. See ``upload`` and
``download`` for the protocols.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffrtmp.media import download as downloads
from ffrtmp.media import upload as uploads
from ffrtmp.media.credentials import Credentials
from ffrtmp.media.errors import Refused, TransferError, Unavailable
from ffrtmp.media.locations import is_presigned
from ffrtmp.media.transport import Transport


@dataclass(frozen=True)
class Entry:
    """One entry of a collection's listing."""

    name: str
    is_dir: bool
    size: int | None
    mtime: str | None


class WebDav:
    """A pooled session with a Basic login per host from ``credentials``."""

    def __init__(self, credentials: Credentials, *, timeout_s: float = 30.0) -> None:
        self.transport = Transport(credentials, timeout_s)
        self._collections: set[str] = set()  # made (or found) by this client: not MKCOL'd again

    def upload(self, local: Path, url: str, *, tag: str, progress: Callable[[int], None] | None = None,
               cancel: threading.Event | None = None) -> int:
        """Put ``local`` at ``url`` (never partial there); returns its size. One try.

        ``tag`` names this try's temporary object (``.NAME.TAG.part``); make it unique per try.
        """
        if is_presigned(url):
            return uploads.upload_presigned(self.transport, local, url, progress, cancel)
        return uploads.upload_webdav(self.transport, local, url, tag, self._collections, progress, cancel)

    def download(self, url: str, local: Path, *, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None) -> int:
        """Get ``url`` into ``local`` (resuming ``local``.part); returns its size. One try."""
        return downloads.download(self.transport, url, local, progress, cancel)

    def size(self, url: str) -> int | None:
        """The object's size from HEAD; None when there is none (404)."""
        response = self.transport.send("HEAD", url, (200, 404))
        if response.status_code == 404:
            return None
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise Unavailable("HEAD", url, "no Content-Length in the answer")
        return int(length)

    def delete(self, url: str) -> None:
        """Remove the object; one that is not there (404) is fine."""
        self.transport.send("DELETE", url, (200, 202, 204, 404))

    def delete_collection(self, url: str) -> None:
        """Remove a collection and everything in it; one that is not there (404) is fine.

        WebDAV deletes a collection's members with it (``Depth: infinity``, the only depth
        RFC 4918 allows for DELETE); the trailing ``/`` names the collection itself.
        """
        url = url if url.endswith("/") else url + "/"
        self.transport.send("DELETE", url, (200, 202, 204, 404), headers={"Depth": "infinity"})

    def list(self, url: str) -> list[Entry]:
        """The collection's entries, from the server's JSON index (nginx ``autoindex_format json``)."""
        url = url if url.endswith("/") else url + "/"
        response = self.transport.send("GET", url, (200,), headers={"Accept": "application/json"})
        try:
            return [_entry(item) for item in json.loads(response.text)]
        except (ValueError, TypeError, KeyError) as exc:
            raise Unavailable("GET", url, f"not a JSON listing ({type(exc).__name__})") from None

    def check(self, url: str, *, timeout_s: float = 5.0) -> str:
        """Readiness: "reachable", "unreachable: <why>" or "refused: <status>" for the store's root."""
        root = url if url.endswith("/") else url + "/"
        try:
            self.transport.send("HEAD", root, (200, 204, 301, 302, 404, 405),
                                timeout=(min(timeout_s, 5.0), timeout_s))
        except Refused as exc:
            return f"refused: {exc.status}"
        except TransferError as exc:
            return f"unreachable: {getattr(exc, 'why', exc)}"
        return "reachable"

    def close(self) -> None:
        self.transport.close()


def _entry(item: Any) -> Entry:
    size, mtime = item.get("size"), item.get("mtime")
    return Entry(name=str(item["name"]), is_dir=item.get("type") == "directory",
                 size=int(size) if isinstance(size, int) else None,
                 mtime=str(mtime) if mtime is not None else None)
