"""Operator commands: ``ffrtmp jobs …`` and ``ffrtmp nodes …`` against the master's API.

Most node commands are one request and a rendering of its answer, so they are rows of a
table (``NODE_REQUESTS``); ``jobs submit`` is written out; the other ``jobs`` actions live in
``cli.jobs``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ffrtmp.cli import jobs as job_commands
from ffrtmp.cli import masters, render
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env
from ffrtmp.cli.submit import SUBMIT_EPILOG, add_submit_options, check_nodes, spec_from_args
from ffrtmp.contract import Queue

Handler = Callable[[argparse.Namespace, Env], int]
QUEUES = [q.value for q in Queue]  # plain strings: argparse shows the repr of each choice


@dataclass(frozen=True)
class Request:
    """A command that is one API request and a rendering of its answer."""

    action: str
    help: str
    method: str
    path: str  # formatted with the parsed arguments
    render: Callable[[Any, argparse.Namespace], str]
    target: str | None = None  # the positional argument the path names
    options: Callable[[argparse.ArgumentParser], None] | None = None
    params: Callable[[argparse.Namespace], dict[str, Any]] | None = None


NODE_REQUESTS = (
    Request("list", "list nodes", "GET", "/api/v1/nodes", lambda data, args: render.node_rows(data["nodes"])),
    Request("show", "show a node", "GET", "/api/v1/nodes/{node_id}",
            lambda data, args: render.node_detail(data["node"]), "node_id"),
    Request("drain", "stop giving a node new jobs", "POST", "/api/v1/nodes/{node_id}/drain",
            lambda data, args: f"{args.node_id}: draining\n", "node_id"),
    Request("undrain", "give a drained node jobs again", "POST", "/api/v1/nodes/{node_id}/undrain",
            lambda data, args: f"{args.node_id}: accepting jobs\n", "node_id"),
    Request("remove", "forget a node with no running jobs", "DELETE", "/api/v1/nodes/{node_id}",
            lambda data, args: f"{args.node_id}: removed\n", "node_id"),
)


def requested(request: Request, args: argparse.Namespace, env: Env) -> int:
    params = request.params(args) if request.params else None
    data = Api.connect(args, env).call(request.method, request.path.format_map(vars(args)), params=params)
    render.emit(env, args, data, partial(request.render, data, args))
    return 0


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
    _add_requests(_noun(sub, "nodes", "inspect and drain nodes"), NODE_REQUESTS, common)
    masters.add_parser(sub, common)


def _noun(sub: SubParsers, name: str, text: str) -> SubParsers:
    parser = sub.add_parser(name, help=text)
    actions: SubParsers = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
    return actions


def _add_requests(actions: SubParsers, requests: tuple[Request, ...],
                  common: argparse.ArgumentParser) -> None:
    for request in requests:
        p = actions.add_parser(request.action, parents=[common], help=request.help)
        if request.target:
            p.add_argument(request.target)
        if request.options:
            request.options(p)
        handler: Handler = partial(requested, request)
        p.set_defaults(handler=handler)
