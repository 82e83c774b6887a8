"""Getting a URL into a local file, resuming where an earlier try stopped.

The bytes go to ``LOCAL.part``; a later try asks for the rest with ``Range: bytes=N-``
(206: append; 200: the server starts again, so do we; 416 with a complete part: done). The
total length is checked before the part is renamed to LOCAL, so LOCAL exists only complete.

The object's validator (a strong ETag, else Last-Modified) is kept beside the part in
``LOCAL.part.validator`` and sent as ``If-Range``: if the object changed since the part was
begun, the server sends all of the new one (200) instead of splicing two versions together.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import requests

from ffrtmp.files import fsync_dir
from ffrtmp.media.body import REPORT_EVERY, Progress
from ffrtmp.media.errors import Canceled, Unavailable
from ffrtmp.media.transport import Transport, describe

_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


def part_of(local: Path) -> Path:
    return local.with_name(local.name + ".part")


def validator_of(local: Path) -> Path:
    return local.with_name(local.name + ".part.validator")


def read_validator(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def keep_validator(response: requests.Response, path: Path) -> None:
    """Remember what identifies this version of the object (for ``If-Range`` on a later try)."""
    etag = response.headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified", "")
    if validator and validator.isascii() and "\n" not in validator:
        path.write_text(validator + "\n", encoding="ascii")
    else:
        path.unlink(missing_ok=True)


def content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total length) of a Content-Range header; None where it does not say."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match:
        return None, None
    first, total = match.groups()
    return (int(first) if first else None), (int(total) if total and total != "*" else None)


def request_rest(transport: Transport, url: str, offset: int, validator: str | None,
                 cancel: threading.Event | None) -> tuple[requests.Response, int, int | None]:
    """GET what is missing: (response, the offset it starts at, the total length if known)."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    response = transport.send("GET", url, (200, 206, 416), headers=headers, stream=True, cancel=cancel)
    if response.status_code == 206:
        first, total = content_range(response)
        if first != offset:
            response.close()
            raise Unavailable("GET", url, f"asked for bytes from {offset}, got a range from {first}")
        return response, offset, total
    if response.status_code == 416:
        return response, offset, content_range(response)[1]
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def receive(response: requests.Response, part: Path, offset: int, url: str,
            progress: Callable[[int], None] | None, cancel: threading.Event | None) -> int:
    """Write the body into ``part`` from ``offset`` (flushed as it comes); returns the part's size."""
    moved = Progress(progress, offset)
    with part.open("r+b" if offset else "wb") as file:
        file.seek(offset)
        file.truncate()
        try:
            for chunk in response.iter_content(REPORT_EVERY):
                if cancel is not None and cancel.is_set():
                    raise Canceled("GET", url)
                file.write(chunk)
                moved.add(len(chunk))
        except (requests.RequestException, OSError) as exc:
            file.flush()
            raise Unavailable("GET", url, f"cut after {moved.moved} bytes: {describe(exc)}") from None
        finally:
            response.close()
        file.flush()
        os.fsync(file.fileno())
    moved.add(0, final=True)
    return moved.moved


def download(transport: Transport, url: str, local: Path, progress: Callable[[int], None] | None,
             cancel: threading.Event | None) -> int:
    """One try (module docstring); returns LOCAL's size."""
    part, validator = part_of(local), validator_of(local)
    offset = part.stat().st_size if part.exists() else 0
    response, offset, total = request_rest(transport, url, offset, read_validator(validator), cancel)
    if response.status_code == 200:
        keep_validator(response, validator)
    if response.status_code == 416:
        response.close()
        if total is None or total != offset:
            part.unlink(missing_ok=True)  # the part is not a prefix of this object: start again
            raise Unavailable("GET", url, f"range from {offset} not satisfiable (length {total})")
        size = offset
    else:
        size = receive(response, part, offset, url, progress, cancel)
    if total is not None and size != total:
        raise Unavailable("GET", url, f"got {size} of {total} bytes")
    part.replace(local)
    validator.unlink(missing_ok=True)
    fsync_dir(local.parent)
    return size
