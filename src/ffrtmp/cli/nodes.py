"""``ffrtmp nodes list|show|drain|undrain|remove``: the farm's nodes, as an operator names them.

NODE is a node's id, a unique prefix of its id, or its name; the master resolves it, and an
ambiguous prefix is refused with the candidates (printed, exit 1).

``nodes drain NODE --wait`` drains, then polls the node until no job is assigned to or running
on it, printing a line each time its running jobs change; it exits 0 once drained, 1 when the
``--deadline`` (default 1h) passes first, with the jobs still running named. The node stays
drained either way: ``undrain`` gives it jobs again.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ffrtmp.cli import render
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import Env, ExitStatus

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

WAIT_POLL_S = 1.0
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration(raw: str) -> float:
    """``30m``, ``1h30m``, ``90s`` or plain seconds; argparse turns a ValueError into exit 2."""
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return float(raw)
    match = DURATION.fullmatch(raw)
    if not raw or match is None:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected a duration such as 30m, 1h30m or 90s")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _path(ref: str, action: str = "") -> str:
    return f"/api/v1/nodes/{quote(ref, safe='')}" + (f"/{action}" if action else "")


def ready_text(node: dict[str, Any]) -> str:
    if node.get("ready") is None:
        return "-"
    return "yes" if node["ready"] else "no"


def node_rows(nodes: list[dict[str, Any]]) -> str:
    return render.table(
        ("id", "name", "status", "ready", "slots", "running", "last heartbeat", "reason"),
        [(n["id"], n["name"], n["status"], ready_text(n), n["slots"], n["running"],
          n["last_heartbeat"], n.get("ready_reason")) for n in nodes])


def node_detail(node: dict[str, Any]) -> str:
    """The node's row, its facts (from its agent's latest start), its running jobs and its
    latest platform SLA violations."""
    facts = [("ready", f"{ready_text(node)}" + (f" ({node['ready_reason']})" if node["ready_reason"]
                                                 else "")),
             ("encoders", f"{len(node['encoders'])}: {', '.join(node['encoders'])}"),
             ("hwaccels", ", ".join(node["hwaccels"]) or "-"),
             ("labels", " ".join(f"{k}={v}" for k, v in sorted(node["labels"].items())) or "-"),
             ("slots", f"{node['slots']} ({node['running']} busy)"),
             ("ffmpeg", node["ffmpeg_version"] or "-"), ("agent", node["agent_version"] or "-"),
             ("registered", node["registered_at"])]
    if node.get("maintenance_since"):
        facts.append(("maintenance", f"since {node['maintenance_since']}"))
    text = node_rows([node]) + "".join(f"  {key:<12}{value}\n" for key, value in facts)
    jobs = node.get("running_jobs", [])
    text += f"\nrunning jobs ({len(jobs)})\n"
    if jobs:
        text += render.table(("job", "state", "attempt", "started", "progress"),
                             [(j["id"], j["state"], j["attempt"], j["started_at"],
                               _percent(j.get("progress"))) for j in jobs])
    violations = node.get("violations", [])
    text += f"\nrecent violations ({len(violations)})\n"
    if violations:
        text += render.table(("at", "job", "attempt", "exit", "reason"),
                             [(v["at"], v["job_id"], v["attempt"], v["exit_code"], v["reason"])
                              for v in violations])
    return text


def _percent(progress: dict[str, Any] | None) -> str | None:
    if not progress or progress.get("percent") is None:
        return None
    return f"{float(progress['percent']):.0f} %"


# --- the commands ---


def list_nodes(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("GET", "/api/v1/nodes")
    render.emit(env, args, data, lambda: node_rows(data["nodes"]))
    return 0


def show(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("GET", _path(args.node))
    render.emit(env, args, data, lambda: node_detail(data["node"]))
    return 0


def _action(action: str, said: str) -> Any:
    def run(args: argparse.Namespace, env: Env) -> int:
        method = "DELETE" if action == "remove" else "POST"
        data = Api.connect(args, env).call(method, _path(args.node, "" if action == "remove" else action))
        node_id = data["removed"] if action == "remove" else data["node"]["id"]
        render.emit(env, args, data, lambda: f"{node_id}: {said}\n")
        return 0
    return run


def drain(args: argparse.Namespace, env: Env) -> int:
    api = Api.connect(args, env)
    node = api.call("POST", _path(args.node, "drain"))["node"]
    if not args.wait:
        render.emit(env, args, {"node": node}, lambda: f"{node['id']}: draining\n")
        return 0
    env.stderr.write(f"{node['name']} ({node['id']}): draining; waiting up to "
                     f"{render.clock_text(args.deadline)} for its running jobs to end\n")
    node, drained = _wait_drained(api, node["id"], time.monotonic() + args.deadline, env)
    render.emit(env, args, {"node": node},
                lambda: f"{node['id']}: drained\n" if drained else "")
    return int(ExitStatus.OK if drained else ExitStatus.ERROR)


def _wait_drained(api: Api, node_id: str, deadline: float,
                  env: Env) -> tuple[dict[str, Any], bool]:
    """Poll until no job is busy on the node (True) or the deadline passes (False)."""
    last = ""
    while True:
        node = api.call("GET", _path(node_id))["node"]
        jobs = node.get("running_jobs", [])
        if node["running"] == 0:
            return node, True
        left = deadline - time.monotonic()
        line = (f"{node['name']}: {node['running']} job(s) still running: "
                + ", ".join(f"{j['id']}" + (f" {p}" if (p := _percent(j.get('progress'))) else "")
                            for j in jobs))
        if line != last:
            env.stderr.write(f"{line} ({render.clock_text(max(0.0, left))} left)\n")
            env.stderr.flush()
            last = line
        if left <= 0:
            env.stderr.write(f"ffrtmp: deadline passed: {node['name']} still has {node['running']} "
                             "running job(s); it stays drained\n")
            return node, False
        time.sleep(min(WAIT_POLL_S, left))


# --- parsers ---


def add_parsers(actions: SubParsers, common: argparse.ArgumentParser) -> None:
    node_help = "a node's id, a unique id prefix, or its name"
    p = actions.add_parser("list", parents=[common], help="list nodes with their readiness")
    p.set_defaults(handler=list_nodes)
    p = actions.add_parser("show", parents=[common], help="show a node: facts, running jobs, "
                           "recent violations")
    p.add_argument("node", metavar="NODE", help=node_help)
    p.set_defaults(handler=show)
    p = actions.add_parser("drain", parents=[common], help="stop giving a node new jobs "
                           "(--wait: until its running jobs end)",
                           epilog="exit 0: drained (with --wait: no job left on it); 1: the "
                           "deadline passed with jobs still running (it stays drained)")
    p.add_argument("node", metavar="NODE", help=node_help)
    p.add_argument("--wait", action="store_true", help="wait until no job runs on the node, "
                   "printing each change")
    p.add_argument("--deadline", type=duration, default=3600.0, metavar="DURATION",
                   help="with --wait: give up after this long, e.g. 30m, 1h30m, 90s (default 1h)")
    p.set_defaults(handler=drain)
    for action, text, said in (("undrain", "give a drained node jobs again", "accepting jobs"),
                               ("remove", "forget a node with no running jobs", "removed")):
        p = actions.add_parser(action, parents=[common], help=text)
        p.add_argument("node", metavar="NODE", help=node_help)
        p.set_defaults(handler=_action(action, said))
