"""``ffrtmp jobs list|show|watch|cancel|retry|logs``: reading and following jobs.

``jobs watch ID`` polls the job twice a second; its node reports progress about once a second
(between heartbeats), and the elapsed time and the ETA count on locally, so the line moves at
least once a second. On a terminal it redraws one line on stderr; otherwise it prints a line
each time the line changes. It ends when the job is at rest (100 % when it succeeded), prints
the job as ``show`` does, and exits 0 only for a success (1 otherwise, 130 on Ctrl-C).

``jobs watch`` without an id follows every assigned or running job as a table on stdout,
redrawn in place on a terminal once a second; piped, it prints one time-stamped line per job
whose figures changed, and one when a job leaves the table with the state it ended in. It runs
until Ctrl-C, which ends it with exit 0: that is how it is meant to stop.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from ffrtmp.cli import render
from ffrtmp.cli.connection import Api
from ffrtmp.cli.context import CliError, Env
from ffrtmp.contract import AT_REST, JobState, Queue

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

QUEUES = [q.value for q in Queue]  # plain strings: argparse shows the repr of each choice
PAGE = 500  # the most parts one request lists
REASONS_READ = 20  # failed or lost parts whose detail is read for their reason
WATCH_POLL_S = 0.5  # one job: twice a second, so each second's report shows within the second
TABLE_POLL_S = 1.0  # every running job: once a second
ACTIVE = f"{JobState.ASSIGNED.value},{JobState.RUNNING.value}"


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", help="comma-separated states")
    p.add_argument("--queue", choices=QUEUES)
    p.add_argument("--node", help="node id, unique id prefix or name")
    p.add_argument("--limit", type=int, default=100, help="at most this many (1-500)")
    p.add_argument("--cursor", type=int, help="continue from a previous page's next_cursor")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--children", action="store_true", help="include the parts of split jobs")
    which.add_argument("--parent", metavar="ID", help="list the parts of one split job, oldest first")


def _list_params(args: argparse.Namespace) -> dict[str, Any]:
    given = {k: getattr(args, k) for k in ("state", "queue", "node", "limit", "cursor", "parent")}
    return {k: v for k, v in given.items() if v is not None} | ({"children": 1} if args.children else {})


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
    """A job's outcome, requirements, attempts and history; ``--json`` prints the API's answer."""
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


def cancel(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("POST", f"/api/v1/jobs/{args.job_id}/cancel")
    render.emit(env, args, data, lambda: render.canceled(data["job"]))
    return 0


def retry(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("POST", f"/api/v1/jobs/{args.job_id}/retry")
    render.emit(env, args, data, lambda: render.job_state(data["job"]))
    return 0


def logs(args: argparse.Namespace, env: Env) -> int:
    data = Api.connect(args, env).call("GET", f"/api/v1/jobs/{args.job_id}/logs")
    render.emit(env, args, data, lambda: render.log_tail(data))
    return 0


def watch(args: argparse.Namespace, env: Env) -> int:
    if args.job_id is None:
        return watch_all(Api.connect(args, env), args, env)
    return follow(Api.connect(args, env), args.job_id, args, env)


class Poller:
    """Fetches one job over and over in a thread, keeping the latest answer (or error), so the
    line is redrawn on time even while a request is slow: elapsed and ETA count on locally."""

    def __init__(self, api: Api, job_id: str) -> None:
        self.api, self.job_id = api, job_id
        self.job: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.fresh = threading.Event()  # set by each answer
        threading.Thread(target=self._run, daemon=True, name="watch-poll").start()

    def _run(self) -> None:
        while True:
            try:
                self.job = self.api.call("GET", f"/api/v1/jobs/{self.job_id}")["job"]
            except BaseException as exc:  # handed to the main thread, which raises it
                self.error = exc
                self.fresh.set()
                return
            self.fresh.set()
            if self.job is not None and self.job["state"] in AT_REST:
                return
            time.sleep(WATCH_POLL_S)

    def latest(self, timeout: float) -> dict[str, Any]:
        """The latest job, waiting up to ``timeout`` for a newer one (the first: for good)."""
        self.fresh.wait(timeout if self.job is not None else None)
        self.fresh.clear()
        if self.error is not None:
            raise self.error
        if self.job is None:  # never: the first wait ends with an answer or an error
            raise CliError(f"no answer about job {self.job_id}")
        return self.job


def follow(api: Api, job_id: str, args: argparse.Namespace, env: Env) -> int:
    """Follow a job until it is at rest; exit 0 only when it succeeded.

    A split job's parent is at rest once every part is (its state derives from them), so this
    follows the whole split; its line shows the segments done and the stage."""
    poller, last = Poller(api, job_id), ""
    while True:
        job = poller.latest(WATCH_POLL_S)
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


def watch_all(api: Api, args: argparse.Namespace, env: Env) -> int:
    """Every assigned or running job, until Ctrl-C (exit 0)."""
    tty = hasattr(env.stdout, "isatty") and env.stdout.isatty() and not args.json
    shown: dict[str, str] = {}  # piped: the last line printed per job
    drawn = 0  # on a terminal: the lines to draw over
    try:
        while True:
            jobs = api.call("GET", "/api/v1/jobs", params={"state": ACTIVE, "children": 1,
                                                           "limit": PAGE})["jobs"]
            now = time.time()
            if args.json:
                env.stdout.write(json.dumps({"at": now, "jobs": jobs}) + "\n")
            elif tty:
                drawn = _redraw(env, jobs, now, drawn)
            else:
                _changed_lines(api, env, jobs, shown, now)
            env.stdout.flush()
            time.sleep(TABLE_POLL_S)
    except KeyboardInterrupt:
        return 0


def _redraw(env: Env, jobs: list[dict[str, Any]], now: float, drawn: int) -> int:
    """Draw the table over the previous one (cursor up, clear to the end); the lines drawn."""
    head = f"{time.strftime('%H:%M:%S', time.localtime(now))}  {len(jobs)} job(s) assigned or running"
    text = head + "\n" + (render.live_rows(jobs, now) if jobs else "")
    env.stdout.write((f"\x1b[{drawn}F" if drawn else "") + "\x1b[J" + text)
    return text.count("\n")


def _changed_lines(api: Api, env: Env, jobs: list[dict[str, Any]], shown: dict[str, str],
                   now: float) -> None:
    """Piped: a line per job whose figures changed, and one per job that left the table."""
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    current = {j["id"]: render.live_line(j, now) for j in jobs}
    for job_id, line in current.items():
        if shown.get(job_id) != line:
            env.stdout.write(f"{stamp} {line}\n")
    for job_id in [k for k in shown if k not in current]:
        ended = api.call("GET", f"/api/v1/jobs/{job_id}")["job"]
        env.stdout.write(f"{stamp} {render.live_line(ended, now)}\n")
    shown.clear()
    shown.update(current)


WATCH_HELP = ("With an id: one line, updated at least once a second, until the job ends (exit 0 "
              "when it succeeded, 1 otherwise). Without: every assigned or running job, redrawn "
              "in place on a terminal, one line per change when piped; Ctrl-C ends it (exit 0).")


def add_parsers(jobs: SubParsers, common: argparse.ArgumentParser) -> None:
    """Every ``jobs`` action but ``submit`` (``commands`` adds it, with its ``--watch``)."""
    p = jobs.add_parser("list", parents=[common], help="list jobs, newest first (split jobs' parts "
                        "with --children or --parent)")
    _list_options(p)
    p.set_defaults(handler=list_jobs)
    p = jobs.add_parser("show", parents=[common], help="show a job: outcome, requirements, "
                        "outputs, attempts and history (a split job: with its parts)")
    p.add_argument("job_id")
    p.set_defaults(handler=show)
    for name, text, handler in (
            ("cancel", "cancel a job (a split job: every part)", cancel),
            ("retry", "run a failed, canceled or lost job again (a split job: the parts that did "
                      "not succeed)", retry),
            ("logs", "print the log tail of a job's last attempt", logs)):
        p = jobs.add_parser(name, parents=[common], help=text)
        p.add_argument("job_id")
        p.set_defaults(handler=handler)
    p = jobs.add_parser("watch", parents=[common], help="follow a job (elapsed, ETA, fps, speed) "
                        "until it ends; without an id, every running job as a live table",
                        description=WATCH_HELP)
    p.add_argument("job_id", nargs="?", help="the job to follow (none: every running job)")
    p.set_defaults(handler=watch)
