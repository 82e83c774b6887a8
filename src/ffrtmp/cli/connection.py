"""The operator's settings and the one client the operator commands share.

The master URL, the token and the CA bundle come from flags, then the environment, then a
file of ``FFRTMP_*=value`` lines (``$FFRTMP_CONFIG`` or ``~/.config/ffrtmp/cli.env``). They
are resolved by ``config.load`` like every process's settings, so the token file obeys the
same rules and a bad value is the same one line and exit 78. An empty value counts as unset.
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


class Api:
    """A thin operator client: one request per call, errors turned into ``CliError``."""

    def __init__(self, settings: CliSettings) -> None:
        self.url = settings.master_url
        self.token = settings.api_token
        self.verify: str | bool = settings.ca_file or True

    @classmethod
    def connect(cls, args: argparse.Namespace, env: Env) -> Api:
        return cls(settings(args, env))

    def call(self, method: str, path: str, body: Any = None,
             params: Mapping[str, Any] | None = None) -> Any:
        import requests

        try:
            response = requests.request(
                method, self.url + path, json=body, params=params, verify=self.verify, timeout=30,
                headers={"Authorization": f"Bearer {self.token}"})
        except requests.exceptions.SSLError as exc:
            raise CliError(f"TLS verification of {self.url} failed: {exc}") from None
        except requests.RequestException as exc:
            raise CliError(f"cannot reach the master at {self.url}: "
                           f"{type(exc).__name__}") from None
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
