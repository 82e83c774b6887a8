"""``ffrtmp masters``: which masters share the farm's database, which are up, and which one
ran each background duty last (the answer is the same from any master)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ffrtmp.cli import render
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def master_rows(data: Mapping[str, Any]) -> str:
    """One row per master; a farm whose masters predate the list says so instead of an empty table."""
    masters = data["masters"]
    if not masters:
        return "no master has announced itself yet (masters do so every heartbeat interval)\n"
    return render.table(("id", "up", "version", "started", "last seen", "duties"),
                        [(m["id"], "yes" if m["up"] else "no", m["version"], m["started_at"],
                          m["last_seen"], ", ".join(m["holds"]) or "-") for m in masters])


def list_masters(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("GET", "/api/v1/masters")
    render.emit(env, args, data, partial(master_rows, data))
    return 0


def add_parser(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("masters", parents=[common],
                       help="list the masters sharing the database and the duties each runs")
    p.set_defaults(handler=list_masters)
