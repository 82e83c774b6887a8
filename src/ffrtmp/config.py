"""Every setting declared once: flag, environment variable, parser, default, help and users.

The argparse options, the environment lookup (flag over ``FFRTMP_<NAME>`` over default),
the typed settings classes (``ffrtmp.settings``), ``docs/configuration.md`` and the Ansible
env-file test are all generated from ``SETTINGS`` (and ``SECRETS``).
A bad value stops the process at start with one line naming the setting (exit 78).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, overload
from urllib.parse import parse_qs, urlsplit

from ffrtmp import logs
from ffrtmp.defaults import WORKER_DEFAULTS, env_name
from ffrtmp.settings import (
    CONFIG_CLASSES,
    SETTINGS_CLASSES,
    AgentSettings,
    CliSettings,
    MasterSettings,
)
from ffrtmp.settings.base import SettingsBase

EX_CONFIG = 78

MASTER: Final = "master"
AGENT: Final = "agent"
CLI: Final = "cli"
PROCESSES = (MASTER, AGENT, CLI)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""

    def __init__(self, env: str, value: object, expected: str) -> None:
        shown = "" if value is None else f"={value!r}"
        super().__init__(f"{env}{shown}: {expected}")
        self.env = env


# --- parsers: each takes the raw string and returns the typed value or raises ValueError ---


def _bind(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    ipv6 = host.startswith("[") and host.endswith("]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or (":" in host and not ipv6):
        raise ValueError("expected host:port, e.g. 0.0.0.0:8080 or [::1]:8080")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - binding all interfaces is the documented default


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a positive integer") from None
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _percent(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a percentage, e.g. 90") from None
    if not 0 < value <= 100:
        raise ValueError("expected a percentage above 0 and at most 100")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a positive number of seconds")
    return value


def _level(raw: str) -> str:
    """The seed's names (``warn``, ``fatal``) become Python's, which gunicorn and logging share."""
    return logging.getLevelName(logs.level_of(raw)).lower()


def _url(raw: str) -> str:
    if not re.match(r"^https?://[^/\s]+", raw):
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def _urls(raw: str) -> tuple[str, ...]:
    """Comma-separated URLs, in the order a client tries them (several masters: failover)."""
    urls: list[str] = []
    for index, part in enumerate(raw.split(","), 1):
        if not part.strip():
            raise ValueError(f"URL {index} is empty: expected comma-separated http(s):// URLs")
        try:
            url = _url(part.strip())
        except ValueError as exc:
            raise ValueError(f"URL {index} ({part.strip()!r}): {exc}") from None
        if url in urls:
            raise ValueError(f"URL {index} ({url!r}) is listed twice")
        urls.append(url)
    return tuple(urls)


def _optional_url(raw: str) -> str | None:
    return _url(raw) if raw else None


def _database(raw: str) -> str:
    if not (raw.startswith("sqlite:///") or raw.startswith(("postgresql://", "postgres://"))):
        raise ValueError("expected sqlite:////path/to/file.db or postgresql://…")
    return raw


def _roots(raw: str) -> tuple[str, ...]:
    roots = tuple(p for p in raw.split(":") if p)
    if not roots or any(not p.startswith("/") for p in roots):
        raise ValueError("expected colon-separated absolute paths")
    return tuple(os.path.normpath(p) for p in roots)


def _path(raw: str) -> str:
    if not raw:
        raise ValueError("expected a path")
    return raw


def _optional_path(raw: str) -> str | None:
    return raw or None


def _text(raw: str) -> str:
    return raw


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    used_by: tuple[str, ...]
    secret_file: bool = False

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("master_bind", _bind, "0.0.0.0:8080", "address of the master API", (MASTER,)),
    Setting("metrics_bind", _bind, "0.0.0.0:9090", "address of the master's /metrics and /health", (MASTER,)),
    Setting("database", _database, "sqlite:////var/lib/ffrtmp/master/ffrtmp.db",
            "job store: sqlite:////path.db (embedded) or postgresql://… (no password in it)", (MASTER,)),
    Setting("database_password_file", _optional_path, "",
            "file holding the PostgreSQL password of the database URL's user (first line)",
            (MASTER,), secret_file=True),
    Setting("api_token_file", _path, "/etc/ffrtmp/api-token",
            "file with operator tokens, one a line", (MASTER, CLI), secret_file=True),
    Setting("enroll_token_file", _path, "/etc/ffrtmp/enroll-token",
            "file with the token agents enroll with", (MASTER, AGENT), secret_file=True),
    Setting("media_roots", _roots, "/srv/media",
            "colon-separated directories that job files must stay inside", (MASTER, AGENT)),
    Setting("log_dir", _path, WORKER_DEFAULTS["log_dir"],
            "log directory (falls back to ./logs when it can't be written)", (MASTER, AGENT)),
    Setting("log_level", _level, WORKER_DEFAULTS["log_level"],
            "debug, info, warn (or warning), error or fatal",
            (MASTER, AGENT)),
    Setting("workers", _positive_int, "2", "gunicorn worker processes", (MASTER,)),
    Setting("threads", _positive_int, "32",
            "threads per gunicorn worker (bounds concurrent long-polling claims)", (MASTER,)),
    Setting("graceful_timeout", _seconds, "30", "seconds in-flight requests get at shutdown", (MASTER,)),
    Setting("read_timeout", _seconds, "10",
            "seconds a client has to send a request's headers, and may pause while sending its body",
            (MASTER,)),
    Setting("heartbeat_interval", _seconds, "5", "seconds between agent heartbeats", (MASTER,)),
    Setting("node_timeout", _seconds, "30",
            "seconds of silence before a node is offline and its running jobs lost; a live node's"
            " name stays its own this long; a running attempt its node no longer lists is lost"
            " after this plus one heartbeat interval; after the master starts or its database"
            " takes writes again, nodes get this long again to heartbeat", (MASTER,)),
    Setting("lease", _seconds, "30",
            "seconds an agent has to confirm an assignment before it is queued again", (MASTER,)),
    Setting("claim_wait_max", _seconds, "20", "longest a claim may wait for work", (MASTER,)),
    Setting("retention_days", _positive_int, "7", "days finished jobs are kept", (MASTER,)),
    Setting("duty_interval", _seconds, "2",
            "seconds between lease expiry / offline / retention sweeps", (MASTER,)),
    Setting("max_body", _positive_int, "1048576", "largest accepted request body in bytes", (MASTER,)),
    Setting("tls_cert_file", _optional_path, "", "certificate for HTTPS (with tls_key_file)", (MASTER,)),
    Setting("tls_key_file", _optional_path, "", "private key for HTTPS (with tls_cert_file)", (MASTER,)),
    Setting("master_url", _urls, "http://127.0.0.1:8080",
            "the master API's URL, or several, comma-separated: one in use, the next on failure",
            (AGENT, CLI)),
    Setting("ca_file", _optional_path, "",
            "CA bundle that verifies the master (default: the system store)", (AGENT, CLI)),
    Setting("media_store_url", _optional_url, "",
            "the farm's media store: store:///path in a job spec means this URL plus the path",
            (AGENT, CLI)),
    Setting("media_credentials_file", _optional_path, "",
            "netrc file with a login and password per media store host (sent only to that host)",
            (AGENT, CLI)),
    Setting("agent_bind", _bind, "0.0.0.0:9091",
            "address of the agent's /health /ready /metrics /wrapper/metrics /violations", (AGENT,)),
    Setting("agent_web_config", _optional_path, "",
            "INI file turning on TLS and Basic or bearer auth for the agent's endpoints, like"
            " node_exporter's web.config (/health and /ready stay open); empty: plain HTTP", (AGENT,)),
    Setting("state_dir", _path, WORKER_DEFAULTS["state_dir"],
            "agent state: credential, job directories, result spool", (AGENT,)),
    Setting("work_dir", _path, "/var/lib/ffrtmp/worker/work",
            "scratch space for jobs; its disk usage gates readiness", (AGENT,)),
    Setting("disk_limit_percent", _percent, "90",
            "the agent stops claiming jobs while the work dir's or a media root's filesystem is"
            " fuller than this (percent used)", (AGENT,)),
    Setting("slots", _positive_int, "1", "jobs this node runs at once", (AGENT,)),
    Setting("shutdown_timeout", _seconds, "30",
            "seconds the agent waits for running jobs when stopped (jobs keep running after)",
            (AGENT,)),
    Setting("node_name", _text, "", "name this node registers as (default: the hostname)", (AGENT,)),
    Setting("cancel_grace", _seconds, WORKER_DEFAULTS["cancel_grace"],
            "seconds between SIGTERM and SIGKILL when an operator cancels a job", (AGENT,)),
    Setting("job_history", _positive_int, "500",
            "delivered job directories the agent keeps (the oldest beyond are removed)", (AGENT,)),
    Setting("job_history_hours", _positive_int, "24",
            "hours the agent keeps a delivered job's directory", (AGENT,)),
)

BY_NAME = {s.name: s for s in SETTINGS}


# Secrets each process reads from a ``*_FILE`` setting: every token of the file, or its first.
# ``env`` names a variable holding the secret itself, which a flag naming the file beats.
@dataclasses.dataclass(frozen=True)
class Secret:
    name: str
    source: str
    every: bool
    used_by: tuple[str, ...]
    env: str | None = None


SECRETS: tuple[Secret, ...] = (
    Secret("api_tokens", "api_token_file", True, (MASTER,)),
    Secret("enroll_token", "enroll_token_file", False, (MASTER, AGENT)),
    Secret("api_token", "api_token_file", False, (CLI,), env="FFRTMP_API_TOKEN"),
)


def settings_for(process: str) -> list[Setting]:
    return [s for s in SETTINGS if process in s.used_by]


def secrets_for(process: str) -> list[Secret]:
    return [s for s in SECRETS if process in s.used_by]


def add_arguments(parser: argparse.ArgumentParser, process: str) -> None:
    """Add one flag per setting of ``process``; absent flags stay None so env/default apply."""
    group = parser.add_argument_group("settings (flag > environment > default)")
    for s in settings_for(process):
        default = f" (default {s.default})" if s.default else ""
        group.add_argument(s.flag, dest=s.name, default=None, metavar=s.name.upper(),
                           help=f"{s.help}; env {s.env}{default}")


Given = argparse.Namespace | Mapping[str, Any] | None


@overload
def load(process: Literal["master"], args: Given = None, environ: Mapping[str, str] | None = None,
         *, read_secrets: Literal[True] = True) -> MasterSettings: ...
@overload
def load(process: Literal["agent"], args: Given = None, environ: Mapping[str, str] | None = None,
         *, read_secrets: Literal[True] = True) -> AgentSettings: ...
@overload
def load(process: Literal["cli"], args: Given = None, environ: Mapping[str, str] | None = None,
         *, read_secrets: Literal[True] = True) -> CliSettings: ...
@overload
def load(process: str, args: Given = None, environ: Mapping[str, str] | None = None,
         *, read_secrets: bool = True) -> SettingsBase: ...
def load(process: str, args: Given = None, environ: Mapping[str, str] | None = None,
         *, read_secrets: bool = True) -> SettingsBase:
    """Resolve every setting of ``process`` and read the secret files it needs.

    The result is the process's generated class (``ffrtmp.settings``); without its secrets
    (``read_secrets=False``) it is the class of the table's values alone.
    """
    environ = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    values = _resolve(process, given, environ)
    if process == MASTER:
        _check_tls(values)
        _check_database(values, read_secrets=read_secrets)
    if process == AGENT and not values["node_name"]:
        values["node_name"] = socket.gethostname()
    if not read_secrets:
        return CONFIG_CLASSES[process](**values)
    for secret in secrets_for(process):
        values[secret.name] = _read_secret(secret, values, given, environ)
    return SETTINGS_CLASSES[process](**values)


def _resolve(process: str, given: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Flag over environment over default, each parsed; a bad value names its variable."""
    values: dict[str, Any] = {}
    for s in settings_for(process):
        raw = given.get(s.name)
        if raw is None:
            raw = environ.get(s.env, s.default)
        if raw is None:
            raw = ""
        try:
            values[s.name] = s.parse(str(raw))
        except ValueError as exc:
            raise ConfigError(s.env, raw, str(exc)) from None
    return values


def _read_secret(secret: Secret, values: Mapping[str, Any], given: Mapping[str, Any],
                 environ: Mapping[str, str]) -> str | tuple[str, ...]:
    if secret.env and given.get(secret.source) is None and environ.get(secret.env):
        return environ[secret.env]
    tokens = read_token_file(BY_NAME[secret.source], values[secret.source])
    return tokens if secret.every else tokens[0]


def _check_tls(values: dict[str, Any]) -> None:
    cert, key = values["tls_cert_file"], values["tls_key_file"]
    if bool(cert) != bool(key):
        missing = BY_NAME["tls_key_file" if cert else "tls_cert_file"]
        raise ConfigError(missing.env, None, "HTTPS needs both FFRTMP_TLS_CERT_FILE and FFRTMP_TLS_KEY_FILE")
    for name in ("tls_cert_file", "tls_key_file"):
        if values[name] and not Path(values[name]).is_file():
            raise ConfigError(BY_NAME[name].env, values[name], "file not found")


def _check_database(values: Mapping[str, Any], *, read_secrets: bool) -> None:
    """A PostgreSQL password lives in its own file, never in the URL (which is logged, shown in
    ``ps`` and kept in the unit's environment); a bad file stops the start, not the first query."""
    url, path = values["database"], values["database_password_file"]
    if _url_has_password(url):
        raise ConfigError(BY_NAME["database"].env, None,
                          "the URL holds a password: put it in FFRTMP_DATABASE_PASSWORD_FILE instead")
    if path and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(BY_NAME["database_password_file"].env, path,
                          "a password file needs a postgresql:// FFRTMP_DATABASE")
    if path and read_secrets:
        read_password_file(path)


def _url_has_password(url: str) -> bool:
    """``user:password@`` or a ``password=`` parameter (libpq reads both); a URL too broken to
    split counts as holding one, so its text is never echoed back."""
    try:
        parts = urlsplit(url)
        return parts.password is not None or "password" in parse_qs(parts.query)
    except ValueError:
        return True


def read_password_file(path: str) -> str:
    """The file's first line, stripped: readable by the service, never by other users."""
    setting = BY_NAME["database_password_file"]
    try:
        with Path(path).open(encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(setting.env, path, f"cannot read the password file ({reason})") from None
    if mode & 0o007:
        raise ConfigError(setting.env, path,
                          f"the password file is open to other users (mode {mode & 0o777:04o}): chmod o-rwx")
    password = (text.splitlines() or [""])[0].strip()
    if not password:
        raise ConfigError(setting.env, path, "the password file is empty")
    return password


def read_token_file(setting: Setting, path: str) -> tuple[str, ...]:
    """Read non-empty, non-comment lines; a token shorter than 16 characters is refused."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(setting.env, path, f"cannot read token file ({exc.strerror})") from None
    tokens = tuple(t for t in (line.strip() for line in lines) if t and not t.startswith("#"))
    if not tokens:
        raise ConfigError(setting.env, path, "token file holds no token")
    if any(len(t) < 16 for t in tokens):
        raise ConfigError(setting.env, path, "every token must be at least 16 characters")
    return tokens


def env_file_lines(values: Mapping[str, str], process: str) -> list[str]:
    """Render ``FFRTMP_*=value`` lines for an EnvironmentFile, in table order."""
    known = {s.name for s in settings_for(process)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"not settings of {process}: {sorted(unknown)}")
    return [f"{s.env}={values[s.name]}" for s in settings_for(process) if s.name in values]


def markdown_table(processes: Iterable[str] = PROCESSES) -> str:
    """The settings reference in docs/configuration.md."""
    rows = ["| variable | flag | default | used by | meaning |", "|---|---|---|---|---|"]
    wanted = set(processes)
    for s in SETTINGS:
        if wanted & set(s.used_by):
            rows.append(f"| `{s.env}` | `{s.flag}` | `{s.default or '—'}` | "
                        f"{', '.join(s.used_by)} | {s.help} |")
    return "\n".join(rows) + "\n"

