"""The text the operator commands print: tables, details, one-line answers and the progress bar.

Data goes to stdout (a table, or with ``--json`` the API's own objects); the progress of a
watched job goes to stderr, so ``--json`` output stays one JSON document. A split job's parent
is shown with its derived progress (stage, segments done) and the table of its parts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ffrtmp.cli.context import Env
from ffrtmp.contract import AT_REST, JobState, Step
from ffrtmp.jobview import operator_job


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


REASONED = frozenset({JobState.FAILED, JobState.LOST})  # parts whose reason the table shows


def is_split(job: Mapping[str, Any]) -> bool:
    """A split job's parent: never dispatched, its state and progress derived from its parts."""
    return job.get("step") == Step.SPLIT


def segments_done(p: Mapping[str, Any]) -> str:
    """``3/10`` segments done, or nothing while the plan has not cut the source yet."""
    return f"{p.get('segments_done') or 0}/{p['segments']}" if p.get("segments") else ""


def progress_text(job: Mapping[str, Any]) -> str:
    p = job.get("progress") or {}
    if p.get("percent") is not None and is_split(job):
        return " ".join(t for t in (f"{p['percent']:.0f}%", p.get("stage"), segments_done(p)) if t)
    if p.get("percent") is not None:
        return f"{p['percent']:.0f}%"
    if p.get("out_time_s") is not None:
        return f"{p['out_time_s']:.0f}s"
    return "-"


def job_rows(jobs: Sequence[Mapping[str, Any]], parts: bool = False) -> str:
    """The list of jobs; with ``parts`` (children included) each row also names its parent and step."""
    headers: tuple[str, ...] = ("id", "state", "queue", "priority", "node", "progress", "intent",
                                "created")
    rows: list[tuple[Any, ...]] = [(j["id"], j["state"], j["queue"], j["priority"], j["node_id"],
             progress_text(j), j.get("intent"), j["created_at"]) for j in jobs]
    if parts:
        headers = (headers[0], "parent", "step", *headers[1:])
        rows = [(r[0], j.get("parent_id"), j.get("step"), *r[1:]) for r, j in zip(rows, jobs, strict=True)]
    return table(headers, rows)


def step_of(job: Mapping[str, Any]) -> Mapping[str, Any]:
    step = (job.get("spec") or {}).get("step")
    return step if isinstance(step, Mapping) else {}


def part_reason(job: Mapping[str, Any]) -> str | None:
    """Why a failed or lost part stopped: its latest transition (present when its detail was read)."""
    history = job.get("history") or []
    return history[-1].get("reason") if job["state"] in REASONED and history else None


def part_rows(parts: Sequence[Mapping[str, Any]]) -> str:
    """A split's parts, oldest first: the plan, the segments by index, the audio, the stitch."""
    shown = [operator_job(j) for j in parts]
    return table(("id", "step", "index", "state", "node", "attempt", "progress", "reason"),
                 [(j["id"], j.get("step"), step_of(j).get("index"), j["state"], j["node_id"],
                   j.get("attempt"), progress_text(j), part_reason(j)) for j in shown])


def split_lines(job: Mapping[str, Any]) -> list[str]:
    """A parent's split (segment length, stage, segments done), or the parent a part belongs to."""
    if job.get("parent_id"):
        index = step_of(job).get("index")
        return [f"  part of   {job['parent_id']} ({job.get('step') or '-'}"
                + ("" if index is None else f" {index}") + ")"]
    if not is_split(job):
        return []
    p = job.get("progress") or {}
    length = (job["spec"].get("split") or {}).get("segment_s")
    facts = [f"segments of {length:g} s" if isinstance(length, int | float) else "",
             f"stage {p['stage']}" if p.get("stage") else "",
             f"{segments_done(p)} segments done" if p.get("segments") else ""]
    return [f"  split     {', '.join(f for f in facts if f)}"]


def split_detail(job: Mapping[str, Any], parts: Sequence[Mapping[str, Any]]) -> str:
    """A split job's parent as ``job_detail`` shows it, then the table of its parts."""
    rows = part_rows(parts).splitlines()
    return job_detail(job) + "  parts:\n" + "".join(f"    {row}\n" for row in rows)


def job_detail(job: Mapping[str, Any]) -> str:
    """A job, its delivered outputs and its history; every URL redacted (``jobview``), also when
    the master that answered did not redact them."""
    job = operator_job(job)
    lines = [f"job {job['id']}: {job['state']}"
             + (" (cancel requested)" if job.get("cancel_requested") else ""),
             f"  input     {job['spec']['input']}"]
    lines += [f"  output    {o['url']} ({o['preset']})" for o in job["spec"]["outputs"]]
    lines += [f"  queue     {job['queue']} / {job['priority']}", f"  node      {job['node_id'] or '-'}",
              f"  progress  {progress_text(job)}"]
    lines += split_lines(job) + delivered_lines(job) + failure_lines(job) + ["  history:"]
    lines += [f"    {h['at']}  {h['from'] or '-'} -> {h['to']}  attempt={h['attempt']}  "
              f"{h['reason']}" for h in job.get("history", [])]
    return "\n".join(lines) + "\n"


def size_text(n: int) -> str:
    """Bytes in decimal units with one decimal (``12.3 MB``), as storage is sold and shown."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def delivered_lines(job: Mapping[str, Any]) -> list[str]:
    """The outputs of the latest attempt whose result lists any: what is in the store now."""
    results = [a["result"] for a in job.get("attempts", []) if a.get("result")]
    outputs: list[Mapping[str, Any]] = next(
        (r["outputs"] for r in reversed(results) if r.get("outputs")), [])
    return [f"  delivered {o['url']}  {size_text(o['bytes'])}  sha256 {o['sha256'][:8]}…  "
            + ("-" if o.get("duration_s") is None else f"{o['duration_s']:.1f} s")
            + f"  {o.get('size') or '-'}" for o in outputs]


def failure_lines(job: Mapping[str, Any]) -> list[str]:
    """The latest attempt's failure reason, unless the history already shows it."""
    attempts = [a for a in job.get("attempts", []) if a.get("result")]
    if not attempts or attempts[-1]["result"].get("outcome") != "failed":
        return []
    reason = attempts[-1]["result"].get("reason") or ""
    if not reason or any(reason in (h.get("reason") or "") for h in job.get("history", [])):
        return []
    return [f"  failed    attempt {attempts[-1]['attempt']}: {reason}"]


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
    if is_split(job):
        extra = " ".join(t for t in (f"segments {segments_done(p)}" if p.get("segments") else "",
                                     p.get("stage")) if t)
    return f"{job['id']} {job['state']:<9} {shown}{extra}".rstrip()
