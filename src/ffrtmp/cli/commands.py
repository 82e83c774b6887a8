"""Operator commands: ``ffrtmp jobs …`` and ``ffrtmp nodes …`` against the master's API.

The parser skeleton and ``jobs submit`` live here; the other ``jobs`` actions in ``cli.jobs``,
the ``nodes`` actions in ``cli.nodes``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ffrtmp.cli import jobs as job_commands
from ffrtmp.cli import masters, render
from ffrtmp.cli import nodes as node_commands
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env
from ffrtmp.cli.submit import SUBMIT_EPILOG, add_submit_options, check_nodes, spec_from_args
from ffrtmp.contract import Queue

QUEUES = [q.value for q in Queue]  # plain strings: argparse shows the repr of each choice


def submit(args: argparse.Namespace, env: Env) -> int:
    spec = spec_from_args(args, env)  # usage errors first, before any token is needed
    api = Api.connect(args, env)
    check_nodes(spec, api.call("GET", "/api/v1/nodes")["nodes"], args, env)
    job = api.call("POST", "/api/v1/jobs", spec)["job"]
    if args.watch:
        env.stderr.write(f"submitted {job['id']}\n")
        return job_commands.follow(api, job["id"], args, env)
    render.emit(env, args, {"job": job}, lambda: f"{job['id']}\n")
    return 0


# --- parsers ---

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parsers(sub: SubParsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--master-url", help="master API URL, or several comma-separated "
                        "(env FFRTMP_MASTER_URL)")
    common.add_argument("--api-token-file", "--token-file", dest="token_file",
                        help="file holding an operator token "
                        "(env FFRTMP_API_TOKEN, FFRTMP_API_TOKEN_FILE)")
    common.add_argument("--ca-file", help="CA bundle to verify the master (env FFRTMP_CA_FILE)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    jobs = _noun(sub, "jobs", "submit and follow jobs")
    p = jobs.add_parser("submit", parents=[common], help="submit a job", epilog=SUBMIT_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_submit_options(p, QUEUES)
    p.set_defaults(handler=submit)
    job_commands.add_parsers(jobs, common)
    node_commands.add_parsers(_noun(sub, "nodes", "inspect and drain nodes"), common)
    masters.add_parser(sub, common)


def _noun(sub: SubParsers, name: str, text: str) -> SubParsers:
    parser = sub.add_parser(name, help=text)
    actions: SubParsers = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
    return actions
