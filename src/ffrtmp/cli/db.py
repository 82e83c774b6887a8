"""``ffrtmp db migrate-to postgresql://…``: move a SQLite farm's store to PostgreSQL.

An entry module (it reaches the store, which the operator commands never import): run on the
master's host, as the service user, with the master stopped. The copy is ``store.transfer``;
this is its command line and its report. The password comes from a file, never the URL or the
command line, and is never printed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ffrtmp import config
from ffrtmp.cli.context import CliError, Env, ExitStatus

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


def _source(args: argparse.Namespace, env: Env) -> str:
    """``--from``, else the master's ``FFRTMP_DATABASE`` when it is SQLite, else its default."""
    given: str = args.source or env.environ.get("FFRTMP_DATABASE") or config.BY_NAME["database"].default or ""
    if not given.startswith(SQLITE):
        raise CliError(f"the source must be the SQLite database (sqlite:////path.db), not {given!r}",
                       ExitStatus.USAGE)
    return given[len(SQLITE):]


def _target(url: str) -> str:
    if not url.startswith(POSTGRES):
        raise CliError(f"the target must be a postgresql://… URL, not {url!r}", ExitStatus.USAGE)
    if urlsplit(url).password is not None:
        raise CliError("the target URL holds a password: put it in a file and pass --password-file",
                       ExitStatus.USAGE)
    return url


def _password(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return config.read_password_file(path)
    except config.ConfigError as exc:
        raise CliError(f"--password-file: {str(exc).partition(': ')[2]}", ExitStatus.CONFIG) from None


def migrate_to(args: argparse.Namespace, env: Env) -> int:
    source, target = _source(args, env), _target(args.url)
    password = _password(args.password_file)
    from ffrtmp.master.store.transfer import MigrateError
    from ffrtmp.master.store.transfer import migrate_to as copy

    def say(line: str) -> None:
        env.stdout.write(line + "\n")
        env.stdout.flush()

    try:
        copied = copy(source, target, password=password, say=say)
    except MigrateError as exc:
        raise CliError(str(exc)) from None
    say(f"copied into {_shown(target)} in one transaction, counts verified:")
    for table, rows in copied.items():
        say(f"  {table:<15} {rows}")
    say("next: point the master at it (FFRTMP_DATABASE, FFRTMP_DATABASE_PASSWORD_FILE) and start it")
    return 0


def _shown(url: str) -> str:
    """The URL as printed: user, host and database, never a query string's options."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def add_parsers(sub: SubParsers) -> None:
    db = sub.add_parser("db", help="the master's database (run on the master's host)")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = actions.add_parser("migrate-to", help="copy this SQLite farm's store into an empty "
                           "PostgreSQL database (the master stopped)")
    p.add_argument("url", help="the target, postgresql://user@host:5432/dbname (no password in it)")
    p.add_argument("--from", dest="source", metavar="SQLITE_URL",
                   help="the SQLite store (default: $FFRTMP_DATABASE, else "
                   f"{config.BY_NAME['database'].default})")
    p.add_argument("--password-file", help="file whose first line is the target user's password")
    p.set_defaults(handler=migrate_to)
