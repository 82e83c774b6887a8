"""Operator commands: ``ffrtmp jobs …`` and ``ffrtmp nodes …`` against the master's API.

Data goes to stdout (a table, or with ``--json`` the API's own objects), messages to stderr.
The master URL and token come from flags, then the environment, then a config file of
``FFRTMP_*=value`` lines (``$FFRTMP_CONFIG`` or ``~/.config/ffrtmp/cli.env``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ffrtmp.cli import Env

FINAL_STATES = ("succeeded", "failed", "canceled", "lost")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--master-url", help="master API URL (env FFRTMP_MASTER_URL)")
    common.add_argument("--api-token-file", "--token-file", dest="token_file",
                        help="file holding an operator token "
                        "(env FFRTMP_API_TOKEN, FFRTMP_API_TOKEN_FILE)")
    common.add_argument("--ca-file", help="CA bundle to verify the master (env FFRTMP_CA_FILE)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    _add_job_parsers(sub, common)
    _add_node_parsers(sub, common)


def _add_job_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    jobs = sub.add_parser("jobs", help="submit and follow jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = jsub.add_parser("submit", parents=[common], help="submit a job")
    p.add_argument("--spec", help="a job spec JSON file ('-' for stdin)")
    p.add_argument("--input", help="input: media-root file, URL or testsrc://?duration=…")
    p.add_argument("--output", action="append", default=[], help="output URL (repeatable)")
    p.add_argument("--preset", action="append", default=[],
                   help="preset for each --output (one preset applies to all)")
    p.add_argument("--queue", choices=("live", "default", "batch"))
    p.add_argument("--priority", choices=("high", "medium", "low"))
    p.add_argument("--requires", action="append", default=[], help="required capability")
    p.add_argument("--duration", type=float, help="cap the output duration (seconds)")
    p.add_argument("--intent", help="a label for the job")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends")
    p.set_defaults(handler=submit)
    p = jsub.add_parser("list", parents=[common], help="list jobs, newest first")
    p.add_argument("--state", help="comma-separated states")
    p.add_argument("--queue", choices=("live", "default", "batch"))
    p.add_argument("--node", help="node id")
    p.add_argument("--limit", type=int, default=100, help="at most this many (1-500)")
    p.add_argument("--cursor", type=int, help="continue from a previous page's next_cursor")
    p.set_defaults(handler=list_jobs)
    for name, handler, text in (("show", show_job, "show a job with its attempts and history"),
                                ("cancel", cancel_job, "cancel a job"),
                                ("retry", retry_job, "run a failed, canceled or lost job again"),
                                ("logs", job_logs, "print the log tail of a job's last attempt"),
                                ("watch", watch_job, "follow a job with a progress bar")):
        p = jsub.add_parser(name, parents=[common], help=text)
        p.add_argument("job_id")
        p.set_defaults(handler=handler)


def _add_node_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    nodes = sub.add_parser("nodes", help="inspect and drain nodes")
    nsub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)
    p = nsub.add_parser("list", parents=[common], help="list nodes")
    p.set_defaults(handler=list_nodes)
    for name, handler, text in (("show", show_node, "show a node"),
                                ("drain", drain_node, "stop giving a node new jobs"),
                                ("undrain", undrain_node, "give a drained node jobs again"),
                                ("remove", remove_node, "forget a node with no running jobs")):
        p = nsub.add_parser(name, parents=[common], help=text)
        p.add_argument("node_id")
        p.set_defaults(handler=handler)


# --- connection ---


def _config_file(environ: Mapping[str, str]) -> dict[str, str]:
    path = Path(environ.get("FFRTMP_CONFIG") or Path.home() / ".config" / "ffrtmp" / "cli.env")
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("FFRTMP_"):
            values[key] = value.strip().strip('"')
    return values


class Api:
    """A thin operator client: one request per call, errors turned into ``CliError``."""

    def __init__(self, args: argparse.Namespace, env: Env) -> None:
        from ffrtmp import config
        from ffrtmp.cli import CliError, ExitStatus

        merged = {**_config_file(env.environ), **env.environ}
        url = args.master_url or merged.get("FFRTMP_MASTER_URL") or "http://127.0.0.1:8080"
        try:
            self.url = config.BY_NAME["master_url"].parse(url)
        except ValueError as exc:
            raise CliError(f"FFRTMP_MASTER_URL={url!r}: {exc}", ExitStatus.CONFIG) from None
        self.token = self._token(args, merged)
        self.verify: str | bool = args.ca_file or merged.get("FFRTMP_CA_FILE") or True

    @staticmethod
    def _token(args: argparse.Namespace, merged: Mapping[str, str]) -> str:
        from ffrtmp.cli import CliError, ExitStatus

        if args.token_file:
            path = args.token_file
        elif merged.get("FFRTMP_API_TOKEN"):
            return merged["FFRTMP_API_TOKEN"]
        else:
            path = merged.get("FFRTMP_API_TOKEN_FILE", "/etc/ffrtmp/api-token")
        try:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    return line.strip()
        except OSError as exc:
            raise CliError(f"FFRTMP_API_TOKEN_FILE={path!r}: cannot read the operator token "
                           f"({exc.strerror}); or set FFRTMP_API_TOKEN", ExitStatus.CONFIG) from None
        raise CliError(f"FFRTMP_API_TOKEN_FILE={path!r}: holds no token", ExitStatus.CONFIG)

    def call(self, method: str, path: str, body: Any = None,
             params: Mapping[str, Any] | None = None) -> Any:
        import requests

        from ffrtmp.cli import CliError, ExitStatus

        try:
            response = requests.request(
                method, self.url + path, json=body, params=params, verify=self.verify, timeout=30,
                headers={"Authorization": f"Bearer {self.token}"})
        except requests.exceptions.SSLError as exc:
            raise CliError(f"TLS verification of {self.url} failed: {exc}") from None
        except requests.RequestException as exc:
            raise CliError(f"cannot reach the master at {self.url}: "
                           f"{type(exc).__name__}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.ok:
            return data
        error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        message = error.get("message") or f"HTTP {response.status_code}"
        status = ExitStatus.AUTH if response.status_code in (401, 403) else ExitStatus.ERROR
        raise CliError(f"{message} (HTTP {response.status_code})", status)


# --- rendering ---


def _emit(env: Env, args: argparse.Namespace, data: Any, table: Callable[[], str]) -> None:
    if args.json:
        env.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        env.stdout.write(table())
    env.stdout.flush()


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _progress_text(job: Mapping[str, Any]) -> str:
    p = job.get("progress") or {}
    if p.get("percent") is not None:
        return f"{p['percent']:.0f}%"
    if p.get("out_time_s") is not None:
        return f"{p['out_time_s']:.0f}s"
    return "-"


def _job_rows(jobs: Sequence[Mapping[str, Any]]) -> str:
    return _table(("id", "state", "queue", "priority", "node", "progress", "intent", "created"),
                  [(j["id"], j["state"], j["queue"], j["priority"], j["node_id"],
                    _progress_text(j), j.get("intent"), j["created_at"]) for j in jobs])


def _job_detail(job: Mapping[str, Any]) -> str:
    lines = [f"job {job['id']}: {job['state']}"
             + (" (cancel requested)" if job.get("cancel_requested") else ""),
             f"  input     {job['spec']['input']}"]
    lines += [f"  output    {o['url']} ({o['preset']})" for o in job["spec"]["outputs"]]
    lines += [f"  queue     {job['queue']} / {job['priority']}", f"  node      {job['node_id'] or '-'}",
              f"  progress  {_progress_text(job)}", "  history:"]
    lines += [f"    {h['at']}  {h['from'] or '-'} -> {h['to']}  attempt={h['attempt']}  "
              f"{h['reason']}" for h in job.get("history", [])]
    return "\n".join(lines) + "\n"


def _node_rows(nodes: Sequence[Mapping[str, Any]]) -> str:
    return _table(("id", "name", "status", "draining", "slots", "running", "last heartbeat"),
                  [(n["id"], n["name"], n["status"], "yes" if n["draining"] else "no", n["slots"],
                    n["running"], n["last_heartbeat"]) for n in nodes])


def _node_detail(node: Mapping[str, Any]) -> str:
    """The table row, then the facts its agent refreshed at its latest start."""
    facts = (("encoders", f"{len(node['encoders'])}: {', '.join(node['encoders'])}"),
             ("hwaccels", ", ".join(node["hwaccels"]) or "-"),
             ("labels", " ".join(f"{k}={v}" for k, v in sorted(node["labels"].items())) or "-"),
             ("ffmpeg", node["ffmpeg_version"] or "-"), ("agent", node["agent_version"] or "-"),
             ("registered", node["registered_at"]))
    return _node_rows([node]) + "".join(f"  {key:<11}{value}\n" for key, value in facts)


# --- jobs ---


def _spec_from_args(args: argparse.Namespace, env: Env) -> dict[str, Any]:
    from ffrtmp.cli import CliError, ExitStatus

    if args.spec:
        try:
            text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text("utf-8")
            spec = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CliError(f"--spec {args.spec}: {exc}", ExitStatus.USAGE) from None
        if not isinstance(spec, dict):
            raise CliError(f"--spec {args.spec}: must be a JSON object", ExitStatus.USAGE)
        return spec
    if not args.input or not args.output:
        raise CliError("give --spec FILE, or --input and at least one --output", ExitStatus.USAGE)
    presets = args.preset or ["h264-720p"]
    if len(presets) not in (1, len(args.output)):
        raise CliError("give one --preset, or one per --output", ExitStatus.USAGE)
    if len(presets) == 1:
        presets = presets * len(args.output)
    spec: dict[str, Any] = {"input": args.input, "outputs": [
        {"url": url, "preset": preset} for url, preset in zip(args.output, presets, strict=True)]}
    for key in ("queue", "priority", "intent"):
        if getattr(args, key):
            spec[key] = getattr(args, key)
    if args.requires:
        spec["requires"] = args.requires
    if args.duration is not None:
        spec["duration_s"] = args.duration
    return spec


def submit(args: argparse.Namespace, env: Env) -> int:
    spec = _spec_from_args(args, env)  # usage errors first, before any token is needed
    api = Api(args, env)
    job = api.call("POST", "/api/v1/jobs", spec)["job"]
    if args.watch:
        env.stderr.write(f"submitted {job['id']}\n")
        return _watch(api, job["id"], args, env)
    _emit(env, args, {"job": job}, lambda: f"{job['id']}\n")
    return 0


def list_jobs(args: argparse.Namespace, env: Env) -> int:
    params = {k: v for k, v in (("state", args.state), ("queue", args.queue), ("node", args.node),
                                ("limit", args.limit), ("cursor", args.cursor)) if v is not None}
    data = Api(args, env).call("GET", "/api/v1/jobs", params=params)
    _emit(env, args, data, lambda: _job_rows(data["jobs"]))
    return 0


def show_job(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("GET", f"/api/v1/jobs/{args.job_id}")
    _emit(env, args, data, lambda: _job_detail(data["job"]))
    return 0


def cancel_job(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("POST", f"/api/v1/jobs/{args.job_id}/cancel")
    job = data["job"]
    _emit(env, args, data, lambda: f"{job['id']}: {job['state']}"
          + (" (cancel requested)\n" if job["state"] not in FINAL_STATES else "\n"))
    return 0


def retry_job(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("POST", f"/api/v1/jobs/{args.job_id}/retry")
    _emit(env, args, data, lambda: f"{data['job']['id']}: {data['job']['state']}\n")
    return 0


def job_logs(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("GET", f"/api/v1/jobs/{args.job_id}/logs")
    _emit(env, args, data, lambda: data["log"] + ("" if data["log"].endswith("\n") else "\n"))
    return 0


def watch_job(args: argparse.Namespace, env: Env) -> int:
    return _watch(Api(args, env), args.job_id, args, env)


def _watch(api: Api, job_id: str, args: argparse.Namespace, env: Env) -> int:
    """Follow a job until it ends; exit 0 only when it succeeded."""
    last = ""
    while True:
        job = api.call("GET", f"/api/v1/jobs/{job_id}")["job"]
        line = _bar(job)
        if env.interactive:
            env.stderr.write("\r" + line.ljust(len(last)))
        elif line != last:
            env.stderr.write(line + "\n")
        env.stderr.flush()
        last = line
        if job["state"] in FINAL_STATES:
            if env.interactive:
                env.stderr.write("\n")
            _emit(env, args, {"job": job}, lambda j=job: _job_detail(j))
            return 0 if job["state"] == "succeeded" else 1
        time.sleep(1)


def _bar(job: Mapping[str, Any], width: int = 30) -> str:
    p = job.get("progress") or {}
    percent = p.get("percent")
    bar = ""
    if percent is not None:
        filled = int(width * min(percent, 100) / 100)
        bar = "[" + "#" * filled + "." * (width - filled) + f"] {percent:5.1f}% "
    extra = " ".join(f"{k}={p[k]}" for k in ("fps", "speed") if p.get(k) is not None)
    return f"{job['id']} {job['state']:<9} {bar}{extra}".rstrip()


# --- nodes ---


def list_nodes(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("GET", "/api/v1/nodes")
    _emit(env, args, data, lambda: _node_rows(data["nodes"]))
    return 0


def show_node(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("GET", f"/api/v1/nodes/{args.node_id}")
    _emit(env, args, data, lambda: _node_detail(data["node"]))
    return 0


def drain_node(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("POST", f"/api/v1/nodes/{args.node_id}/drain")
    _emit(env, args, data, lambda: f"{args.node_id}: draining\n")
    return 0


def undrain_node(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("POST", f"/api/v1/nodes/{args.node_id}/undrain")
    _emit(env, args, data, lambda: f"{args.node_id}: accepting jobs\n")
    return 0


def remove_node(args: argparse.Namespace, env: Env) -> int:
    data = Api(args, env).call("DELETE", f"/api/v1/nodes/{args.node_id}")
    _emit(env, args, data, lambda: f"{args.node_id}: removed\n")
    return 0
