"""Credentials per store host, from a netrc file (the format ``curl --netrc-file`` reads).

A login is sent only to a URL whose hostname is a ``machine`` of the file: a ``default``
entry is ignored, so no password ever goes to a host the operator did not name.
"""

from __future__ import annotations

import netrc
from urllib.parse import urlsplit


class Credentials:
    """Logins by hostname; empty when no file is configured."""

    def __init__(self, logins: dict[str, tuple[str, str]] | None = None) -> None:
        self._logins = {host.lower(): login for host, login in (logins or {}).items()}

    def auth_for(self, url: str) -> tuple[str, str] | None:
        """``(login, password)`` for ``url``'s hostname, or None."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        return self._logins.get(host or "")

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted(self._logins))

    def __repr__(self) -> str:  # never the passwords
        return f"Credentials(hosts={list(self.hosts)})"


def load_credentials(path: str | None) -> Credentials:
    """The logins of the netrc file at ``path`` (none without a path).

    Raises ValueError naming the file and the problem: missing, unreadable, not netrc, or
    naming no machine (a credentials file that names no host is a mistake, not "no logins").
    """
    if not path:
        return Credentials()
    try:
        parsed = netrc.netrc(path)
    except netrc.NetrcParseError as exc:
        # not exc.msg: it quotes the offending token, which may be a password
        raise ValueError(f"media credentials file {path} is not a netrc file (line {exc.lineno}; "
                         "expected: machine HOST login USER password PASS)") from None
    except OSError as exc:
        raise ValueError(f"media credentials file {path} cannot be read: {exc.strerror or exc}") from None
    logins = {host: (login or "", password or "") for host, (login, _account, password)
              in parsed.hosts.items() if host != "default"}
    if not logins:
        raise ValueError(f"media credentials file {path} names no machine "
                         "(expected lines: machine HOST login USER password PASS)")
    return Credentials(logins)
