"""The operator's settings and the one client the operator commands share.

The master URL, the token and the CA bundle come from flags, then the environment, then a
file of ``FFRTMP_*=value`` lines (``$FFRTMP_CONFIG`` or ``~/.config/ffrtmp/cli.env``). They
are resolved by ``config.load`` like every process's settings, so the token file obeys the
same rules and a bad value is the same one line and exit 78. An empty value counts as unset.

Several masters (``FFRTMP_MASTER_URL=a,b``): each call goes to the master that answered last
(the first URL at start) and moves on to the next URL, at once, when that master is away:
for every request when no connection could be made (refused, no such host, connect timeout)
or the master answered 503 (it refuses without acting); for a GET also on a read timeout,
a dropped connection and 502/504. A request that changes something and may have arrived is
never sent twice (a job submitted twice is work run twice): the error says it may have been
done. Other answers are the outcome, from whichever master gave them. When every master
fails, the one-line error names each URL tried and why; the exit status is 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ffrtmp import config
from ffrtmp.cli.context import CliError, Env, ExitStatus
from ffrtmp.settings import CliSettings


def _config_file(environ: Mapping[str, str]) -> dict[str, str]:
    path = Path(environ.get("FFRTMP_CONFIG") or Path.home() / ".config" / "ffrtmp" / "cli.env")
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("FFRTMP_"):
            values[key] = value.strip().strip('"')
    return values


def settings(args: argparse.Namespace, env: Env) -> CliSettings:
    merged = {**_config_file(env.environ), **env.environ}
    flags = {"master_url": args.master_url, "api_token_file": args.token_file, "ca_file": args.ca_file}
    return config.load(config.CLI, {k: v for k, v in flags.items() if v},
                       {k: v for k, v in merged.items() if v})


# the master refuses without acting (store busy or down, shutting down): any request may move on
REFUSED_UNDONE = frozenset({503})
AWAY = frozenset({502, 503, 504})  # a GET moves on after any of these
SAFE = frozenset({"GET", "HEAD"})


class Api:
    """A thin operator client: one request per call (to the next master when one is away),
    errors turned into ``CliError``."""

    def __init__(self, settings: CliSettings) -> None:
        self.urls = list(settings.master_url)
        self.url = self.urls[0]  # the master in use: the one that answered last
        self.token = settings.api_token
        self.verify: str | bool = settings.ca_file or True

    @classmethod
    def connect(cls, args: argparse.Namespace, env: Env) -> Api:
        return cls(settings(args, env))

    def call(self, method: str, path: str, body: Any = None,
             params: Mapping[str, Any] | None = None) -> Any:
        start = self.urls.index(self.url)
        tried: list[tuple[str, str]] = []
        answer: Any = None
        for url in self.urls[start:] + self.urls[:start]:
            answer, why = self._request(url, method, path, body, params)
            if why is None:
                self.url = url
                return _outcome(answer)
            tried.append((url, why))
            if not _moves_on(method, answer, why):
                break
        raise _all_failed(tried, answer, len(self.urls))

    def _request(self, url: str, method: str, path: str, body: Any,
                 params: Mapping[str, Any] | None) -> tuple[Any, str | None]:
        """The response, or the exception; and why it counts as the master being away (None:
        it is the outcome)."""
        import requests

        try:
            response = requests.request(
                method, url + path, json=body, params=params, verify=self.verify, timeout=30,
                headers={"Authorization": f"Bearer {self.token}"})
        except requests.exceptions.SSLError as exc:
            raise CliError(f"TLS verification of {url} failed: {exc}") from None
        except requests.RequestException as exc:
            return exc, type(exc).__name__
        if response.status_code in AWAY:
            return response, f"HTTP {response.status_code}"
        return response, None


def _moves_on(method: str, answer: Any, why: str) -> bool:
    """Whether the next master may be asked: never when a change may have been made already."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError is one too

    if method in SAFE:
        return True
    if isinstance(answer, requests.Response):
        return answer.status_code in REFUSED_UNDONE
    reason = getattr(answer.args[0] if answer.args else None, "reason", None)
    return isinstance(answer, requests.exceptions.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)


def _all_failed(tried: list[tuple[str, str]], answer: Any, masters: int) -> CliError:
    """One line: the last master's error as with one master, then every URL tried and why."""
    import requests

    message = f"cannot reach the master at {tried[-1][0]}: {tried[-1][1]}"
    if isinstance(answer, requests.Response):
        try:
            _outcome(answer)
        except CliError as exc:
            message = str(exc)
    elif len(tried) > 1:
        message = "cannot reach any master"
    if len(tried) < masters:
        message += "; not sent to another master: the request may have been carried out"
    if masters > 1:
        message += "; tried " + ", ".join(f"{url} ({why})" for url, why in tried)
    return CliError(message)


def _outcome(response: Any) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.ok:
        return data
    error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
    message = error.get("message") or f"HTTP {response.status_code}"
    status = ExitStatus.AUTH if response.status_code in (401, 403) else ExitStatus.ERROR
    raise CliError(f"{message} (HTTP {response.status_code})", status)
