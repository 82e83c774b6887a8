"""The text the operator commands print: tables, details, one-line answers and the progress bar.

Data goes to stdout (a table, or with ``--json`` the API's own objects); the progress of a
watched job goes to stderr, so ``--json`` output stays one JSON document.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ffrtmp.cli.context import Env
from ffrtmp.contract import AT_REST


def emit(env: Env, args: argparse.Namespace, data: Any, table: Callable[[], str]) -> None:
    if args.json:
        env.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        env.stdout.write(table())
    env.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def progress_text(job: Mapping[str, Any]) -> str:
    p = job.get("progress") or {}
    if p.get("percent") is not None:
        return f"{p['percent']:.0f}%"
    if p.get("out_time_s") is not None:
        return f"{p['out_time_s']:.0f}s"
    return "-"


def job_rows(jobs: Sequence[Mapping[str, Any]]) -> str:
    return table(("id", "state", "queue", "priority", "node", "progress", "intent", "created"),
                 [(j["id"], j["state"], j["queue"], j["priority"], j["node_id"],
                   progress_text(j), j.get("intent"), j["created_at"]) for j in jobs])


def job_detail(job: Mapping[str, Any]) -> str:
    lines = [f"job {job['id']}: {job['state']}"
             + (" (cancel requested)" if job.get("cancel_requested") else ""),
             f"  input     {job['spec']['input']}"]
    lines += [f"  output    {o['url']} ({o['preset']})" for o in job["spec"]["outputs"]]
    lines += [f"  queue     {job['queue']} / {job['priority']}", f"  node      {job['node_id'] or '-'}",
              f"  progress  {progress_text(job)}", "  history:"]
    lines += [f"    {h['at']}  {h['from'] or '-'} -> {h['to']}  attempt={h['attempt']}  "
              f"{h['reason']}" for h in job.get("history", [])]
    return "\n".join(lines) + "\n"


def job_state(job: Mapping[str, Any]) -> str:
    return f"{job['id']}: {job['state']}\n"


def canceled(job: Mapping[str, Any]) -> str:
    """A job that is not at rest yet was asked to stop: its node ends it at the next heartbeat."""
    if job["state"] in AT_REST:
        return job_state(job)
    return f"{job['id']}: {job['state']} (cancel requested)\n"


def log_tail(data: Mapping[str, Any]) -> str:
    log: str = data["log"]
    return log + ("" if log.endswith("\n") else "\n")


def node_rows(nodes: Sequence[Mapping[str, Any]]) -> str:
    return table(("id", "name", "status", "draining", "slots", "running", "last heartbeat"),
                 [(n["id"], n["name"], n["status"], "yes" if n["draining"] else "no", n["slots"],
                   n["running"], n["last_heartbeat"]) for n in nodes])


def node_detail(node: Mapping[str, Any]) -> str:
    """The table row, then the facts its agent refreshed at its latest start."""
    facts = (("encoders", f"{len(node['encoders'])}: {', '.join(node['encoders'])}"),
             ("hwaccels", ", ".join(node["hwaccels"]) or "-"),
             ("labels", " ".join(f"{k}={v}" for k, v in sorted(node["labels"].items())) or "-"),
             ("ffmpeg", node["ffmpeg_version"] or "-"), ("agent", node["agent_version"] or "-"),
             ("registered", node["registered_at"]))
    return node_rows([node]) + "".join(f"  {key:<11}{value}\n" for key, value in facts)


def bar(job: Mapping[str, Any], width: int = 30) -> str:
    p = job.get("progress") or {}
    percent = p.get("percent")
    shown = ""
    if percent is not None:
        filled = int(width * min(percent, 100) / 100)
        shown = "[" + "#" * filled + "." * (width - filled) + f"] {percent:5.1f}% "
    extra = " ".join(f"{k}={p[k]}" for k in ("fps", "speed") if p.get(k) is not None)
    return f"{job['id']} {job['state']:<9} {shown}{extra}".rstrip()
