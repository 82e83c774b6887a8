"""Checksums of local files, read in chunks: the sha256 a result reports, the md5 S3 verifies."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str) -> bytes:
    digest = hashlib.new(algorithm)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def sha256_hex(path: Path) -> str:
    return file_digest(path, "sha256").hex()


def content_md5(md5: bytes) -> str:
    """The ``Content-MD5`` header value: base64 of the raw digest (RFC 1864)."""
    return base64.b64encode(md5).decode("ascii")
