"""Operator commands: ``ffrtmp jobs …`` and ``ffrtmp nodes …`` against the master's API.

The parser skeleton and ``jobs submit`` live here; the other ``jobs`` actions in ``cli.jobs``,
the ``nodes`` actions in ``cli.nodes``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ffrtmp.cli import jobs as job_commands
from ffrtmp.cli import masters, render
from ffrtmp.cli import nodes as node_commands
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env, ExitStatus
from ffrtmp.cli.submit import SUBMIT_EPILOG, add_submit_options, check_nodes, specs_from_args
from ffrtmp.contract import MAX_BATCH, Queue

QUEUES = [q.value for q in Queue]  # plain strings: argparse shows the repr of each choice


def submit(args: argparse.Namespace, env: Env) -> int:
    given = specs_from_args(args, env)  # usage errors first, before any token is needed
    api = Api.connect(args, env)
    nodes = api.call("GET", "/api/v1/nodes")["nodes"]
    for spec in given if isinstance(given, list) else [given]:
        check_nodes(spec, nodes, args, env)
    if isinstance(given, list):
        return submit_many(api, given, args, env)
    job = api.call("POST", "/api/v1/jobs", given)["job"]
    if args.watch:
        env.stderr.write(f"submitted {job['id']}\n")
        return job_commands.follow(api, job["id"], args, env)
    render.emit(env, args, {"job": job}, lambda: f"{job['id']}\n")
    return 0


def submit_many(api: Api, specs: list[dict[str, Any]], args: argparse.Namespace, env: Env) -> int:
    """The specs in batches of ``MAX_BATCH`` (``POST /jobs/batch``): one id per line, in
    order; a spec the master refuses is named on stderr and the exit status is 2."""
    entries: list[dict[str, Any]] = []
    for start in range(0, len(specs), MAX_BATCH):
        entries += api.call("POST", "/api/v1/jobs/batch",
                            {"jobs": specs[start:start + MAX_BATCH]})["jobs"]
    refused = [(index, entry) for index, entry in enumerate(entries) if entry["status"] != 201]
    for index, entry in refused:
        env.stderr.write(f"ffrtmp: --spec {args.spec} item {index} refused: "
                         f"{entry['error']['message']} (HTTP {entry['status']})\n")
    render.emit(env, args, {"jobs": entries},
                lambda: "".join(f"{e['job']['id']}\n" for e in entries if e["status"] == 201))
    return ExitStatus.USAGE if refused else ExitStatus.OK


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
