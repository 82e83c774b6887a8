"""Operator commands: ``ffrtmp jobs …`` and ``ffrtmp nodes …`` against the master's API.

Most commands are one request and a rendering of its answer, so they are rows of a table
(``JOB_REQUESTS``, ``NODE_REQUESTS``); ``jobs submit``, ``list``, ``show`` and ``watch`` are
written out, since a split job's parent is shown with its parts, which take more requests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ffrtmp.cli import masters, render
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env
from ffrtmp.cli.submit import SUBMIT_EPILOG, add_submit_options, check_nodes, spec_from_args
from ffrtmp.contract import AT_REST, JobState, Queue

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


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", help="comma-separated states")
    p.add_argument("--queue", choices=QUEUES)
    p.add_argument("--node", help="node id")
    p.add_argument("--limit", type=int, default=100, help="at most this many (1-500)")
    p.add_argument("--cursor", type=int, help="continue from a previous page's next_cursor")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--children", action="store_true", help="include the parts of split jobs")
    which.add_argument("--parent", metavar="ID", help="list the parts of one split job, oldest first")


def _list_params(args: argparse.Namespace) -> dict[str, Any]:
    given = {k: getattr(args, k) for k in ("state", "queue", "node", "limit", "cursor", "parent")}
    return {k: v for k, v in given.items() if v is not None} | ({"children": 1} if args.children else {})


JOB_REQUESTS = (
    Request("cancel", "cancel a job (a split job: every part)", "POST", "/api/v1/jobs/{job_id}/cancel",
            lambda data, args: render.canceled(data["job"]), "job_id"),
    Request("retry", "run a failed, canceled or lost job again (a split job: the parts that did not "
            "succeed)", "POST", "/api/v1/jobs/{job_id}/retry",
            lambda data, args: render.job_state(data["job"]), "job_id"),
    Request("logs", "print the log tail of a job's last attempt", "GET", "/api/v1/jobs/{job_id}/logs",
            lambda data, args: render.log_tail(data), "job_id"),
)
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


PAGE = 500  # the most parts one request lists
REASONS_READ = 20  # failed or lost parts whose detail is read for their reason


def list_jobs(args: argparse.Namespace, env: Env) -> int:
    """Top-level jobs, newest first; with ``--parent`` one split job's parts, as ``show`` has them."""
    api = Api.connect(args, env)
    data = api.call("GET", "/api/v1/jobs", params=_list_params(args))
    if args.parent:
        render.emit(env, args, data, lambda: render.part_rows(_with_reasons(api, data["jobs"])))
    else:
        render.emit(env, args, data, partial(render.job_rows, data["jobs"], args.children))
    return 0


def show(args: argparse.Namespace, env: Env) -> int:
    """A job with its attempts and history; ``--json`` prints the API's answer as it came."""
    api = Api.connect(args, env)
    data = api.call("GET", f"/api/v1/jobs/{args.job_id}")
    render.emit(env, args, data, partial(_detail, api, data["job"]))
    return 0


def _detail(api: Api, job: dict[str, Any]) -> str:
    if render.is_split(job):
        return render.split_detail(job, _parts(api, job["id"]))
    return render.job_detail(job)


def _parts(api: Api, parent_id: str) -> list[dict[str, Any]]:
    """Every part of a split job, page by page (a split has up to a thousand segments)."""
    parts: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"parent": parent_id, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/api/v1/jobs", params=params)
        parts += page["jobs"]
        cursor = page.get("next_cursor")
        if not cursor or not page["jobs"]:
            return _with_reasons(api, parts)


def _with_reasons(api: Api, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list carries no history: the first few failed or lost parts are read whole, for their reason."""
    wanted = [j["id"] for j in parts if j["state"] in render.REASONED][:REASONS_READ]
    read = {job_id: api.call("GET", f"/api/v1/jobs/{job_id}")["job"] for job_id in wanted}
    return [read.get(j["id"], j) for j in parts]


def submit(args: argparse.Namespace, env: Env) -> int:
    spec = spec_from_args(args, env)  # usage errors first, before any token is needed
    api = Api.connect(args, env)
    check_nodes(spec, api.call("GET", "/api/v1/nodes")["nodes"], args, env)
    job = api.call("POST", "/api/v1/jobs", spec)["job"]
    if args.watch:
        env.stderr.write(f"submitted {job['id']}\n")
        return _watch(api, job["id"], args, env)
    render.emit(env, args, {"job": job}, lambda: f"{job['id']}\n")
    return 0


def watch(args: argparse.Namespace, env: Env) -> int:
    return _watch(Api.connect(args, env), args.job_id, args, env)


def _watch(api: Api, job_id: str, args: argparse.Namespace, env: Env) -> int:
    """Follow a job until it is at rest; exit 0 only when it succeeded.

    A split job's parent is at rest once every part is (its state derives from them), so this
    follows the whole split; its line shows the segments done and the stage."""
    last = ""
    while True:
        job = api.call("GET", f"/api/v1/jobs/{job_id}")["job"]
        line = render.bar(job)
        if env.interactive:
            env.stderr.write("\r" + line.ljust(len(last)))
        elif line != last:
            env.stderr.write(line + "\n")
        env.stderr.flush()
        last = line
        if job["state"] in AT_REST:
            if env.interactive:
                env.stderr.write("\n")
            render.emit(env, args, {"job": job}, partial(_detail, api, job))
            return 0 if job["state"] == JobState.SUCCEEDED else 1
        time.sleep(1)


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
    p = jobs.add_parser("list", parents=[common], help="list jobs, newest first (split jobs' parts "
                        "with --children or --parent)")
    _list_options(p)
    p.set_defaults(handler=list_jobs)
    p = jobs.add_parser("show", parents=[common], help="show a job with its attempts and history "
                        "(a split job: with its parts)")
    p.add_argument("job_id")
    p.set_defaults(handler=show)
    _add_requests(jobs, JOB_REQUESTS, common)
    p = jobs.add_parser("watch", parents=[common], help="follow a job with a progress bar")
    p.add_argument("job_id")
    p.set_defaults(handler=watch)
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
