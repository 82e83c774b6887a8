"""The operator's settings and the one client the operator commands share.

The master URL, the token and the CA bundle come from flags, then the environment, then
files of ``FFRTMP_*=value`` lines: ``$FFRTMP_CONFIG`` when set, else ``~/.config/ffrtmp/cli.env``
over ``/etc/ffrtmp/cli.env`` (which the roles write on a managed host), key by key. They
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
from urllib.parse import urlsplit

from ffrtmp import config
from ffrtmp.cli.context import CliError, Env, ExitStatus
from ffrtmp.settings import CliSettings

SYSTEM_CONFIG = Path("/etc/ffrtmp/cli.env")  # written by the roles on a managed host
SPEC_REFUSED = frozenset({413, 422})  # the request's content is wrong: a usage or spec error


def config_files(environ: Mapping[str, str]) -> list[Path]:
    """The files read, weakest first: ``$FFRTMP_CONFIG`` alone when set, else the host's file
    the roles wrote, then the operator's own, which overrides it key by key."""
    if environ.get("FFRTMP_CONFIG"):
        return [Path(environ["FFRTMP_CONFIG"])]
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return [SYSTEM_CONFIG, home / ".config" / "ffrtmp" / "cli.env"]


def _config_file(environ: Mapping[str, str], stderr: Any = None) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in config_files(environ):
        values.update(_read_config(path, stderr))
    return values


def _read_config(path: Path, stderr: Any) -> dict[str, str]:
    """A missing file is no file; one that exists but cannot be read is said once (the operator
    is likely not in the group the roles gave it), and skipped."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except PermissionError:
        if stderr is not None:
            stderr.write(f"ffrtmp: warning: cannot read {path} (permission denied: is this user "
                         "in the farm's operators group?); ignoring it\n")
        return values
    except OSError:
        return values
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("FFRTMP_"):
            values[key] = value.strip().strip('"')
    return values


def settings(args: argparse.Namespace, env: Env) -> CliSettings:
    merged = {**_config_file(env.environ, env.stderr), **env.environ}
    flags = {"master_url": args.master_url, "api_token_file": args.token_file, "ca_file": args.ca_file}
    return config.load(config.CLI, {k: v for k, v in flags.items() if v},
                       {k: v for k, v in merged.items() if v})


TIMEOUT_S = 30.0  # connect and read, per request
PROBE_TIMEOUT_S = 3.0  # the TLS handshake tried when a plain-HTTP connection drops


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: requests -> urllib3 (``args[0]``, ``reason``) -> socket."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__,
                 *(item.args[:1] if item.args else ())]
    return seen


def why_unreachable(url: str, exc: BaseException) -> str:
    """Which failure it was, in the operator's words, with what to check."""
    import socket

    import requests

    causes = _causes(exc)
    host = urlsplit(url).hostname or url
    if any(isinstance(c, socket.gaierror) for c in causes) or "NameResolutionError" in repr(causes):
        return f"no such host: {host} does not resolve (DNS); check the URL"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused: nothing listens on that port (is the master running? is the port right?)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"timed out connecting after {TIMEOUT_S:g} s (a firewall, or the wrong host?)"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return (f"timed out: connected, but no answer within {TIMEOUT_S:g} s "
                "(the master is stuck or overloaded)")
    if url.startswith("http://") and _speaks_tls(url):
        return "this port speaks TLS, use https:// (FFRTMP_MASTER_URL or --master-url)"
    if any(isinstance(c, ConnectionResetError | ConnectionAbortedError) for c in causes):
        return "the connection was dropped before an answer"
    return f"{type(exc).__name__}: {exc}"


def _speaks_tls(url: str) -> bool:
    """Whether the port completes a TLS handshake: a TLS listener drops plain HTTP without an
    answer a client could read, so only a handshake tells it apart from any dropped connection."""
    import socket
    import ssl

    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), PROBE_TIMEOUT_S) as raw, \
                context.wrap_socket(raw, server_hostname=parts.hostname):
            return True
    except (OSError, ValueError):
        return False


def tls_failure(url: str, exc: BaseException) -> str:
    """An https:// URL whose handshake failed: a plain-HTTP port, or a certificate not trusted."""
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "http request" in text.lower():
        return (f"TLS handshake with {url} failed: this port speaks plain HTTP, use http:// "
                "(or turn TLS on at the master)")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = text.rpartition("certificate verify failed: ")[2].partition(" (")[0].strip(" ')\"")
        return (f"TLS verification of {url} failed: the master's certificate is not trusted "
                f"({detail}; CERTIFICATE_VERIFY_FAILED): set FFRTMP_CA_FILE or --ca-file to the CA "
                "that signed it")
    return f"TLS verification of {url} failed: {exc}"


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
                method, url + path, json=body, params=params, verify=self.verify, timeout=TIMEOUT_S,
                headers={"Authorization": f"Bearer {self.token}"})
        except requests.exceptions.SSLError as exc:
            raise CliError(tls_failure(url, exc)) from None
        except requests.RequestException as exc:
            return exc, why_unreachable(url, exc)
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
        message += "; tried " + ", ".join(f"{url} ({why.partition(' (')[0]})" for url, why in tried)
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
    status = (ExitStatus.AUTH if response.status_code in (401, 403)
              else ExitStatus.USAGE if response.status_code in SPEC_REFUSED else ExitStatus.ERROR)
    raise CliError(f"{message} (HTTP {response.status_code}){_candidates(error)}", status)


def _candidates(error: dict[str, Any]) -> str:
    """An ambiguous name (``ambiguous_node``) lists what it could mean, one per line."""
    details = error.get("details")
    listed = details.get("candidates") if isinstance(details, dict) else None
    if not isinstance(listed, list):
        return ""
    return "".join(f"\n  {c.get('id')}  {c.get('name')}" for c in listed if isinstance(c, dict))
