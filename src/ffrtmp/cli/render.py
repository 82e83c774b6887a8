"""The text the operator commands print: tables, details, one-line answers and the progress bar.

Data goes to stdout (a table, or with ``--json`` the API's own objects); the progress of a
watched job goes to stderr, so ``--json`` output stays one JSON document. A split job's parent
is shown with its derived progress (stage, segments done) and the table of its parts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
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
    lines += [f"  queue     {job['queue']} / {job['priority']}",
              f"  requires  {', '.join(job.get('capabilities') or []) or '-'}",
              f"  node      {node_text(job)}",
              f"  progress  {progress_text({**job, 'progress': shown_progress(job)})}"]
    lines += split_lines(job) + outcome_lines(job) + delivered_lines(job) + attempt_lines(job)
    lines += ["  history:"] + [f"    {h['at']}  {h['from'] or '-'} -> {h['to']}  attempt={h['attempt']}  "
                               f"{h['reason']}" for h in job.get("history", [])]
    return "\n".join(lines) + "\n"


def node_text(item: Mapping[str, Any]) -> str:
    """``ops-w1 (n-1a2b…)``: the name operators use, and the id; ``-`` before any claim."""
    if not item.get("node_id"):
        return "-"
    return f"{item['node_name']} ({item['node_id']})" if item.get("node_name") else str(item["node_id"])


def outcome_lines(job: Mapping[str, Any]) -> list[str]:
    """How the job ended: the latest result's outcome, exit, platform SLA, runtime and node,
    then its reason; a job ended without a result (lost, canceled early) names its last
    transition's reason."""
    attempts = [a for a in job.get("attempts") or [] if a.get("result")]
    if not attempts:
        history = job.get("history") or []
        if job["state"] not in AT_REST or job["state"] == JobState.SUCCEEDED or not history:
            return []
        return [f"  outcome   {job['state']}", f"  reason    {history[-1].get('reason') or '-'}"]
    attempt, result = attempts[-1], attempts[-1]["result"]
    facts = [exit_text(result), "platform SLA " + ("met" if result.get("platform_sla", True) else "FAILED")]
    if isinstance(result.get("runtime_s"), int | float):
        facts.append(f"runtime {result['runtime_s']:.1f} s")
    lines = [f"  outcome   {result.get('outcome', job['state'])}: {', '.join(facts)} "
             f"(attempt {attempt['attempt']} on {node_text(attempt)})"]
    return lines + ([f"  reason    {result['reason']}"] if result.get("reason") else [])


def exit_text(result: Mapping[str, Any]) -> str:
    if result.get("signal"):
        return f"signal {result['signal']}"
    return "exit -" if result.get("exit_code") is None else f"exit {result['exit_code']}"


def attempt_lines(job: Mapping[str, Any]) -> list[str]:
    """Every attempt: where it ran, how it ended, how long it took."""
    attempts = job.get("attempts") or []
    if not attempts:
        return []
    rows = [(a["attempt"], a.get("node_name") or a.get("node_id"), a.get("state"), a.get("started_at"),
             a.get("ended_at"), *_attempt_result(a.get("result") or {})) for a in attempts]
    text = table(("attempt", "node", "state", "started", "ended", "runtime", "exit", "sla"), rows)
    return ["  attempts:"] + [f"    {row}" for row in text.splitlines()]


def _attempt_result(result: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    if not result:
        return None, None, None
    runtime = result.get("runtime_s")
    return (f"{runtime:.1f} s" if isinstance(runtime, int | float) else None,
            exit_text(result).removeprefix("exit "),
            "met" if result.get("platform_sla", True) else "FAILED")


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


def clock_text(seconds: float | None) -> str:
    """``1:05`` or ``2:03:04``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return (f"{hours}:" if hours else "") + (f"{rest // 60:02d}" if hours else f"{rest // 60}") \
        + f":{rest % 60:02d}"


def shown_progress(job: Mapping[str, Any]) -> dict[str, Any]:
    """The figures to show: a succeeded job is at 100 % whatever its last report said (a
    master from before progress reports kept the last heartbeat's, 19 % or 92 %)."""
    p = dict(job.get("progress") or {})
    if job["state"] == JobState.SUCCEEDED and not is_split(job):
        p.update(percent=100.0, eta_s=0.0)
    return p


def eta_left(job: Mapping[str, Any], now: float) -> float | None:
    """The reported time left, counted down since the report arrived; None when unknown."""
    p = shown_progress(job)
    if p.get("eta_s") is None or job["state"] in AT_REST:
        return 0.0 if job["state"] == JobState.SUCCEEDED else None
    stamp = ts(p.get("updated_at"))
    return max(0.0, float(p["eta_s"]) - (max(0.0, now - stamp) if stamp else 0.0))


def elapsed(job: Mapping[str, Any], now: float) -> float | None:
    """Wall time of the current attempt: since its start, until its end once it ended."""
    attempt = current_attempt(job)
    started = ts(attempt.get("started_at"))
    if started is None:
        return None
    ended = ts(attempt.get("ended_at")) or (ts(job.get("finished_at")) if job["state"] in AT_REST else None)
    return max(0.0, (ended or now) - started)


def current_attempt(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((a for a in job.get("attempts") or [] if a.get("attempt") == job.get("attempt")), {})


def ts(value: Any) -> float | None:
    """An API timestamp (ISO-8601) as a Unix time; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rate_text(p: Mapping[str, Any]) -> list[str]:
    """fps and speed as FFmpeg reports them: ``fps 25``, ``speed 1.02x``."""
    out = []
    if isinstance(p.get("fps"), int | float):
        out.append(f"fps {p['fps']:g}")
    speed = p.get("speed")
    if isinstance(speed, int | float):
        out.append(f"speed {speed:.2f}x")
    elif isinstance(speed, str) and speed:
        out.append(f"speed {speed}")
    return out


def bar(job: Mapping[str, Any], width: int = 30, now: float | None = None) -> str:
    """One line of ``jobs watch``: state, bar and percent, elapsed, ETA, fps, speed, node."""
    now = time.time() if now is None else now
    p = shown_progress(job)
    percent = p.get("percent")
    shown = ""
    if isinstance(percent, int | float):
        filled = int(width * min(percent, 100) / 100)
        shown = "[" + "#" * filled + "." * (width - filled) + f"] {percent:5.1f}% "
    if is_split(job):
        extra = " ".join(t for t in (f"segments {segments_done(p)}" if p.get("segments") else "",
                                     p.get("stage")) if t)
        return f"{job['id']} {job['state']:<9} {shown}{extra}".rstrip()
    facts = [f"elapsed {clock_text(elapsed(job, now))}"] if elapsed(job, now) is not None else []
    if (left := eta_left(job, now)) is not None:
        facts.append(f"eta {clock_text(left)}")
    facts += rate_text(p)
    if job.get("node_name") or job.get("node_id"):
        facts.append(f"on {job.get('node_name') or job['node_id']}")
    facts += outcome_facts(job)
    return f"{job['id']} {job['state']:<9} {shown}{'  '.join(facts)}".rstrip()


def live_line(job: Mapping[str, Any], now: float) -> str:
    """A job's line in a piped ``jobs watch`` without an id (a short bar)."""
    return bar(job, width=10, now=now)


def outcome_facts(job: Mapping[str, Any]) -> list[str]:
    """A finished attempt's exit and SLA, for the last line of a watch."""
    result = current_attempt(job).get("result") or {}
    if not result:
        return []
    exit_text = f"signal {result['signal']}" if result.get("signal") else f"exit {result.get('exit_code')}"
    return [exit_text, "SLA met" if result.get("platform_sla", True) else "SLA FAILED"]


def live_rows(jobs: Sequence[Mapping[str, Any]], now: float) -> str:
    """``jobs watch`` without an id: every assigned or running job, as a table."""
    return table(("id", "state", "node", "progress", "fps", "speed", "eta", "updated"),
                 [(j["id"], j["state"], j.get("node_name") or j.get("node_id"),
                   progress_text({**j, "progress": shown_progress(j)}),
                   *_rates(shown_progress(j)), clock_text(eta_left(j, now)),
                   _age(shown_progress(j), now)) for j in jobs])


def _rates(p: Mapping[str, Any]) -> tuple[str | None, str | None]:
    fps, speed = p.get("fps"), p.get("speed")
    return (f"{fps:g}" if isinstance(fps, int | float) else None,
            f"{speed:.2f}x" if isinstance(speed, int | float) else (speed or None))


def _age(p: Mapping[str, Any], now: float) -> str | None:
    """How old the figures are (``2s ago``): a job whose node went quiet shows it."""
    stamp = ts(p.get("updated_at"))
    return None if stamp is None else f"{max(0.0, now - stamp):.0f}s ago"
