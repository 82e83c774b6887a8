"""Record ids and secrets: how the store mints them and keeps only their hashes."""

from __future__ import annotations

import hashlib
import secrets

ID_PREFIXES = {"job": "j", "node": "n"}  # the API routes ids by these (app.id_converter)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def token_hash(token: str) -> str:
    """Credentials and attempt tokens are stored hashed: a copy of the database grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()
