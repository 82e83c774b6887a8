"""``ffrtmp media put|get|ls``: files in and out of the farm's media store, without ssh.

``put`` prints the ``store:///…`` URL to use in a job spec. A transfer that fails for now
(store down, timeout, 5xx) is tried again a few times with backoff; a refusal (a 4xx) ends
the command at once with the server's status. The store and its credentials come from
``FFRTMP_MEDIA_STORE_URL`` and ``FFRTMP_MEDIA_CREDENTIALS_FILE`` (or their flags, or the
CLI's config file), as for the other operator commands.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar, cast

from ffrtmp import config
from ffrtmp.cli.connection import _config_file as config_file_values
from ffrtmp.cli.context import CliError, Env, ExitStatus
from ffrtmp.media.backoff import delays
from ffrtmp.media.credentials import load_credentials
from ffrtmp.media.errors import Refused, Unavailable
from ffrtmp.media.locations import is_presigned, resolve, store_url_of
from ffrtmp.media.meter import ProgressBar
from ffrtmp.settings import CliConfig
from ffrtmp.urls import redact

if TYPE_CHECKING:  # requests is imported only when a media command runs (the CLI starts fast)
    from ffrtmp.media.webdav import Entry, WebDav

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

TRIES = 5  # the default of --tries
T = TypeVar("T")


@dataclass(frozen=True)
class Store:
    """The configured store and a client with its credentials."""

    url: str | None
    client: WebDav

    def locate(self, remote: str) -> tuple[str, str]:
        """(what to show the user, the URL to send requests to) for a REMOTE argument."""
        if remote.lower().startswith(("http://", "https://")):
            return redact(remote), remote
        try:
            named = store_url_of(remote)
        except ValueError as exc:
            raise CliError(str(exc), ExitStatus.USAGE) from None
        if not self.url:
            raise CliError(f"no media store is configured: set FFRTMP_MEDIA_STORE_URL "
                           f"(or --media-store-url) to use {named}", ExitStatus.CONFIG)
        return named, resolve(named, self.url)


def open_store(args: argparse.Namespace, env: Env) -> Store:
    from ffrtmp.media.webdav import WebDav

    merged = {**config_file_values(env.environ), **env.environ}
    flags = {"media_store_url": args.media_store_url, "media_credentials_file": args.media_credentials_file}
    values = cast(CliConfig, config.load(  # no token read: the store has its own credentials
        config.CLI, {k: v for k, v in flags.items() if v}, {k: v for k, v in merged.items() if v},
        read_secrets=False))
    try:
        credentials = load_credentials(values.media_credentials_file)
    except ValueError as exc:
        raise CliError(str(exc), ExitStatus.CONFIG) from None
    return Store(values.media_store_url, WebDav(credentials, timeout_s=args.timeout))


def with_retries(env: Env, args: argparse.Namespace, attempt: Callable[[int], T]) -> T:
    """``attempt(n)`` until it succeeds or ``--tries`` tries were unavailable; a refusal ends it at once."""
    waits = delays(1.0, 8.0)
    for number in range(1, args.tries + 1):
        try:
            return attempt(number)
        except Refused as exc:
            status = ExitStatus.AUTH if exc.status in (401, 403, 407) else ExitStatus.ERROR
            raise CliError(str(exc), status) from None
        except Unavailable as exc:
            if number == args.tries:
                raise CliError(f"{exc} (gave up after {number} tries)") from None
            wait = next(waits)
            if not args.quiet:
                env.stderr.write(f"ffrtmp: {exc}; trying again in {wait:.0f} s\n")
                env.stderr.flush()
            time.sleep(wait)
    raise CliError("unreachable")  # the loop returns or raises


def bar(env: Env, args: argparse.Namespace, total: int | None) -> ProgressBar:
    shown = not args.quiet and (args.progress or env.interactive)
    return ProgressBar(env.stderr, total, enabled=shown)


def put(args: argparse.Namespace, env: Env) -> int:
    local = Path(args.local)
    if not local.is_file():
        raise CliError(f"{local}: no such file")
    remote = args.remote or "/"
    if remote.endswith("/"):
        remote += local.name
    store = open_store(args, env)
    named, url = store.locate(remote)
    progress = bar(env, args, local.stat().st_size)
    tag = secrets.token_hex(4)
    with_retries(env, args, lambda n: store.client.upload(local, url, tag=f"{tag}{n}", progress=progress))
    progress.done()
    env.stdout.write(named + "\n")
    return 0


def get(args: argparse.Namespace, env: Env) -> int:
    store = open_store(args, env)
    _named, url = store.locate(args.remote)
    name = PurePosixPath(url.split("?", 1)[0]).name
    if not name:
        raise CliError(f"{args.remote} names a directory, not a file", ExitStatus.USAGE)
    local = Path(args.local or name)
    if local.is_dir():
        local = local / name
    total = None if is_presigned(url) else with_retries(env, args, lambda n: store.client.size(url))
    progress = bar(env, args, total)
    with_retries(env, args, lambda n: store.client.download(url, local, progress=progress))
    progress.done()
    env.stdout.write(f"{local}\n")
    return 0


def ls(args: argparse.Namespace, env: Env) -> int:
    store = open_store(args, env)
    prefix = args.prefix if args.prefix.endswith("/") else args.prefix + "/"
    _named, url = store.locate(prefix)
    entries = with_retries(env, args, lambda n: store.client.list(url))
    if args.json:
        env.stdout.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    else:
        env.stdout.write(listing(entries))
    return 0


def listing(entries: list[Entry]) -> str:
    """One line per entry: the name (``name/`` for a directory), the size, the mtime."""
    names = [e.name + ("/" if e.is_dir else "") for e in entries]
    width = max(map(len, names), default=0)
    return "".join(f"{name.ljust(width)}  {'-' if e.size is None else e.size:>14}  {e.mtime or '-'}\n"
                   for name, e in zip(names, entries, strict=True))


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parsers(sub: SubParsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    for name in ("media_store_url", "media_credentials_file"):
        setting = config.BY_NAME[name]
        common.add_argument(setting.flag, dest=name, metavar=name.upper(),
                            help=f"{setting.help} (env {setting.env})")
    common.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the store to connect or send (default 30)")
    common.add_argument("--tries", type=_positive, default=TRIES,
                        help=f"tries while the store is unavailable, with backoff (default {TRIES})")
    shown = common.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true", help="show a progress bar on stderr "
                       "(the default when stderr is a terminal)")
    shown.add_argument("--quiet", action="store_true", help="no progress bar, no retry notices")
    parser = sub.add_parser("media", help="move files in and out of the media store")
    actions = parser.add_subparsers(dest="media_command", metavar="ACTION", required=True)
    p = actions.add_parser("put", parents=[common], help="upload LOCAL to the store; print its store:/// URL")
    p.add_argument("local", metavar="LOCAL")
    p.add_argument("remote", metavar="REMOTE", nargs="?",
                   help="store path (default /<name of LOCAL>; ending in / means that directory)")
    p.set_defaults(handler=put)
    p = actions.add_parser("get", parents=[common], help="download REMOTE from the store")
    p.add_argument("remote", metavar="REMOTE", help="store path, store:///PATH or an http(s) URL")
    p.add_argument("local", metavar="LOCAL", nargs="?", help="file or directory (default ./<name>)")
    p.set_defaults(handler=get)
    p = actions.add_parser("ls", parents=[common], help="list a store directory")
    p.add_argument("prefix", metavar="PREFIX", nargs="?", default="/")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(handler=ls)
