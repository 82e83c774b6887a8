"""TLS and authentication for the agent's endpoints, from one file (``FFRTMP_AGENT_WEB_CONFIG``).

The file plays the part of node_exporter's ``--web.config.file``, in INI form (the agent carries
no YAML parser)::

    [tls_server_config]
    cert_file = /etc/ffrtmp/agent-web/agent.crt
    key_file = /etc/ffrtmp/agent-web/agent.key

    [basic_auth_users]
    prometheus = pbkdf2_sha256$600000$<salt>$<hash>

    [bearer_auth]
    token_file = /etc/ffrtmp/agent-web/token

Any section may be left out; with a user or a token, every path but ``/health`` and ``/ready``
needs one of them (those two are probes that say only a verdict and its reason; the role's
checks and load balancers read them without a secret). Passwords are stored as PBKDF2-SHA256,
not bcrypt as node_exporter's: bcrypt is a compiled package every worker's offline wheelhouse
would have to carry, PBKDF2 is in ``hashlib`` and salted and slow the same way. A credential
once verified is remembered by its SHA-256, so a scrape pays the slow hash once per process.
Anything wrong in the file stops the agent at start, naming the setting and the key.
"""

from __future__ import annotations

import base64
import configparser
import dataclasses
import hashlib
import hmac
import secrets
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path

from ffrtmp.config import BY_NAME, ConfigError

SETTING = "agent_web_config"
OPEN_PATHS = frozenset({"/health", "/ready"})
SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000
MIN_ITERATIONS = 10_000
KEYS: Mapping[str, frozenset[str] | None] = {
    "tls_server_config": frozenset({"cert_file", "key_file"}),
    "basic_auth_users": None,  # any user name
    "bearer_auth": frozenset({"token_file"}),
}


def _error(path: str, key: str, reason: str) -> ConfigError:
    return ConfigError(BY_NAME[SETTING].env, path, f"{key}: {reason}")


def hash_password(password: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """The stored form of a password: ``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (HASH in base64)."""
    salt = salt or secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{SCHEME}${iterations}${salt}${base64.b64encode(digest).decode()}"


def _parse_hash(stored: str) -> tuple[int, str, bytes]:
    scheme, iterations, salt, encoded = stored.split("$")
    if scheme != SCHEME or not iterations.isdigit() or int(iterations) < MIN_ITERATIONS or not salt:
        raise ValueError
    return int(iterations), salt, base64.b64decode(encoded, validate=True)


def verify_password(stored: str, password: str) -> bool:
    iterations, salt, expected = _parse_hash(stored)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return hmac.compare_digest(digest, expected)


@dataclasses.dataclass
class WebConfig:
    """What the file turns on; ``tls`` is the server's context, or None for plain HTTP."""

    tls: ssl.SSLContext | None
    users: dict[str, str]
    tokens: tuple[str, ...]
    _verified: set[bytes] = dataclasses.field(default_factory=set)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def auth(self) -> bool:
        return bool(self.users or self.tokens)

    def describe(self) -> str:
        kinds = [k for k, on in (("basic", self.users), ("bearer", self.tokens)) if on]
        return f"{'https' if self.tls else 'http'}, auth {'+'.join(kinds) or 'off'}"

    def allows(self, path: str, authorization: str) -> bool:
        """Whether a request for ``path`` with this Authorization header may be answered."""
        if not self.auth or path in OPEN_PATHS:
            return True
        kind, _, credential = authorization.partition(" ")
        if kind.lower() == "bearer" and self.tokens:
            return any(hmac.compare_digest(credential.strip().encode(), t.encode()) for t in self.tokens)
        if kind.lower() == "basic" and self.users:
            return self._basic(credential.strip())
        return False

    def _basic(self, credential: str) -> bool:
        key = hashlib.sha256(credential.encode()).digest()
        with self._lock:  # one slow hash at a time: a flood of guesses costs one core at most
            if key in self._verified:
                return True
            try:
                user, sep, password = base64.b64decode(credential, validate=True).decode().partition(":")
            except ValueError:
                return False
            stored = self.users.get(user)
            if not sep or stored is None or not verify_password(stored, password):
                return False
            if len(self._verified) < 64:
                self._verified.add(key)
            return True

    def challenge(self) -> str:
        return 'Basic realm="ffrtmp agent"' if self.users else 'Bearer realm="ffrtmp agent"'


def load_web_config(path: str | None) -> WebConfig | None:
    """The file's settings, or None without one; a problem raises ConfigError naming the key."""
    if not path:
        return None
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # user names keep their case
    try:
        with Path(path).open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(BY_NAME[SETTING].env, path, f"cannot read the file ({exc.strerror})") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise _error(path, "file", f"not an INI file ({str(exc).splitlines()[0]})") from None
    _check_keys(parser, path)
    return WebConfig(tls=_tls(parser, path), users=_users(parser, path), tokens=_tokens(parser, path))


def _check_keys(parser: configparser.ConfigParser, path: str) -> None:
    for section in parser.sections():
        if section not in KEYS:
            raise _error(path, section, f"unknown section (known: {', '.join(KEYS)})")
        known = KEYS[section]
        for key in parser[section]:
            if known is not None and key not in known:
                raise _error(path, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _tls(parser: configparser.ConfigParser, path: str) -> ssl.SSLContext | None:
    if not parser.has_section("tls_server_config"):
        return None
    section = parser["tls_server_config"]
    for key in ("cert_file", "key_file"):
        if not section.get(key, "").strip():
            raise _error(path, f"tls_server_config.{key}", "missing: TLS needs cert_file and key_file")
        if not Path(section[key].strip()).is_file():
            raise _error(path, f"tls_server_config.{key}", f"{section[key].strip()}: file not found")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(section["cert_file"].strip(), section["key_file"].strip())
    except (ssl.SSLError, OSError) as exc:
        raise _error(path, "tls_server_config.cert_file",
                     f"not a certificate matching key_file ({exc})") from None
    return context


def _users(parser: configparser.ConfigParser, path: str) -> dict[str, str]:
    users = dict(parser["basic_auth_users"]) if parser.has_section("basic_auth_users") else {}
    for user, stored in users.items():
        try:
            _parse_hash(stored.strip())
        except ValueError:
            raise _error(path, f"basic_auth_users.{user}",
                         f"expected {SCHEME}$ITERATIONS$SALT$HASH (at least {MIN_ITERATIONS} iterations;"
                         " python -m ffrtmp.agent.web hash makes one)") from None
        if ":" in user:
            raise _error(path, f"basic_auth_users.{user}", "a user name cannot hold ':'")
    return {user: stored.strip() for user, stored in users.items()}


def _tokens(parser: configparser.ConfigParser, path: str) -> tuple[str, ...]:
    file = parser.get("bearer_auth", "token_file", fallback="").strip()
    if not parser.has_section("bearer_auth"):
        return ()
    if not file:
        raise _error(path, "bearer_auth.token_file", "missing")
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _error(path, "bearer_auth.token_file", f"{file}: cannot read it ({reason})") from None
    tokens = tuple(t for t in (line.strip() for line in lines) if t and not t.startswith("#"))
    if not tokens or any(len(t) < 16 or " " in t for t in tokens):
        raise _error(path, "bearer_auth.token_file",
                     f"{file}: needs tokens of 16 characters or more, one a line")
    return tokens


def main(argv: list[str] | None = None) -> int:
    """``python -m ffrtmp.agent.web hash``: the stored form of the password read from stdin."""
    import sys

    if (sys.argv[1:] if argv is None else argv) != ["hash"]:
        print("usage: python -m ffrtmp.agent.web hash < password-file", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("no password on stdin", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
