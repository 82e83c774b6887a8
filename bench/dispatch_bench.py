"""Dispatch benchmark: durable no-op jobs end to end, ffrtmp against Celery + Redis in the same run.

Three systems, interleaved round after round (the order rotates each round, so a drift in the
machine's load hits each alike), every one started fresh for its round and stopped after:

1. ffrtmp: a real master (gunicorn, default settings, SQLite); submitter threads submit 50
   jobs per request (``POST /jobs/batch``; ``--submit-batch 1``: ``POST /jobs`` per job)
   while simulated agents (threads) claim → start → result, each batch's results carried by
   the agent's next claim as the agent sends them (``--results-route``: their own request). Every
   acknowledged submit, start and result is fsync'd before its reply (group commit may share
   one fsync among concurrent ones); claims commit without fsync.
2. Celery 5 on Redis at its defaults (no fsync): ``task.delay()`` per job (Celery has no
   batch publish: a ``group`` publishes one message per task), a no-op task with
   ``acks_late``, every result fetched from the Redis result backend.
3. The same with Redis ``appendonly yes`` + ``appendfsync always`` (fsync per write).

jobs/s = N ÷ wall, first submit → last result acknowledged (ffrtmp) or fetched (Celery). The
ratios are per round, ffrtmp over each Celery variant; the report gives their median.

    python bench/dispatch_bench.py             # 3 rounds of 2,000 jobs each, 2 to 3 minutes
    python bench/dispatch_bench.py --quick     # 3 rounds of 300 jobs
    python bench/dispatch_bench.py --only ffrtmp
    python bench/dispatch_bench.py --submit-batch 1   # ffrtmp submits one job per request
    python bench/dispatch_bench.py --slots 4          # agents of 4 slots instead of 8
    python bench/dispatch_bench.py --results-route    # results on their own route, not in the claim
"""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from bench import harness
from bench.dispatch_agents import measure_ffrtmp
from bench.harness import Log, median
from bench.master_client import running_master

GOALS = harness.goals_of("dispatch")
SYSTEMS = ("ffrtmp", "celery-default", "celery-fsync")
FFRTMP_DURABILITY = ("SQLite WAL, synchronous=FULL: each acknowledged submit, start and result is "
                     "fsync'd before its reply (concurrent ones may share one fsync: group commit); "
                     "claims commit without fsync")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much work each round does; every count and duration is bounded."""

    name: str
    jobs: int = 2000
    rounds: int = 3
    submitters: int = 4  # threads, each sending submit_batch jobs per request (ffrtmp) or a delay() per job
    submit_batch: int = 50  # ffrtmp jobs per submit request (POST /jobs/batch); 1: POST /jobs
    agents: int = 4  # simulated ffrtmp agents (threads)
    slots: int = 8  # each agent claims up to this many jobs per request (its free slots)
    results_in_claim: bool = True  # a batch's results go with the next claim, as the agent sends them
    claim_wait_s: float = 2.0  # long-poll of an agent that found nothing
    warmup: int = 50  # jobs through each system before its measured run, not counted
    # solo: a no-op runs in the worker's own process, no pool IPC; the fastest Celery setting
    # measured on 2 cores (prefork -c2 and threads -c8 were slower, with and without fsync)
    celery_pool: tuple[str, ...] = ("--pool=solo",)
    round_timeout_s: float = 120.0
    deadline_s: float = 900.0


FULL = Profile("full")
QUICK = Profile("quick", jobs=300, warmup=20, deadline_s=300.0)


def one_system(base: Path, profile: Profile, system: str, number: int) -> dict[str, Any]:
    if system == "ffrtmp":
        with running_master(base, f"ffrtmp-{number}") as master:
            result = measure_ffrtmp(master, profile, profile.warmup)
        return {**result, "durability": FFRTMP_DURABILITY}
    from bench.celery_baseline import measure_celery

    return measure_celery(base, profile, system.removeprefix("celery-"), number)


def order(systems: Sequence[str], number: int) -> list[str]:
    """Round ``number`` starts with a different system each time."""
    shift = (number - 1) % len(systems)
    return [*systems[shift:], *systems[:shift]]


def run(profile: Profile, *, systems: Sequence[str] = SYSTEMS, log: Log = print,
        workdir: Path | None = None) -> dict[str, Any]:
    """Every round runs each system once, in a rotating order; the ratios are per round."""
    frame = harness.Run(profile)
    result: dict[str, Any] = {**frame.header("dispatch"),
                              "machine": harness.machine(sqlite=sqlite3.sqlite_version,
                                                         client_shares_cpus_with_server=True)}
    if any(s.startswith("celery") for s in systems):
        from bench.celery_baseline import versions

        result["machine"].update(versions())
    rounds: list[dict[str, Any]] = []
    with harness.scratch(workdir, "ffrtmp-dispatch-bench-") as base:
        for number in range(1, profile.rounds + 1):
            frame.check_deadline()
            figures: dict[str, Any] = {"round": number, "order": order(systems, number)}
            for system in figures["order"]:
                log(f"round {number}: {system}, {profile.jobs} no-op jobs …")
                figures[system] = one_system(base, profile, system, number)
            figures["ratios"] = ratios(figures)
            rounds.append(figures)
    result["rounds"] = rounds
    result["summary"] = summary(rounds, systems)
    return frame.finish(result, goals)


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    out = {}
    for kind in ("default", "fsync"):
        if "ffrtmp" in figures and f"celery-{kind}" in figures:
            out[f"vs_celery_{kind}"] = round(figures["ffrtmp"]["jobs_per_s"]
                                             / figures[f"celery-{kind}"]["jobs_per_s"], 3)
    return out


def summary(rounds: list[dict[str, Any]], systems: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {f"{s}_jobs_per_s": [r[s]["jobs_per_s"] for r in rounds] for s in systems}
    out.update({f"{s}_median_jobs_per_s": round(median(out[f"{s}_jobs_per_s"]), 1) for s in systems})
    for key in ("vs_celery_default", "vs_celery_fsync"):
        values = [r["ratios"][key] for r in rounds if key in r["ratios"]]
        if values:
            out[f"{key}_ratios"] = values
            out[f"{key}_median"] = round(median(values), 3)
    if "ffrtmp" in systems:
        out["ffrtmp_routes"] = sorted({r["ffrtmp"]["routes"] for r in rounds})
    return out


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s = result["summary"]
    measured: dict[str, float] = {}
    if "ffrtmp_median_jobs_per_s" in s:
        measured["e2e_dispatch_jobs_per_s"] = s["ffrtmp_median_jobs_per_s"]
    if "vs_celery_fsync_median" in s:
        measured["e2e_dispatch_vs_celery_fsync"] = s["vs_celery_fsync_median"]
    if "vs_celery_default_median" in s:
        measured["e2e_dispatch_vs_celery_default"] = s["vs_celery_default_median"]
    verdict = harness.verdict(GOALS, measured)
    for key, values in (("e2e_dispatch_vs_celery_fsync", s.get("vs_celery_fsync_ratios")),
                        ("e2e_dispatch_vs_celery_default", s.get("vs_celery_default_ratios"))):
        if key in verdict and values:
            verdict[key]["noise"] = harness.standard_error(values, of_median=True)
    return verdict


# --- the report ---

ROW = "{:<48} {:>10} {:>10} {:>10}"


def columns(label: str, *values: object) -> str:
    """A row of one value per system measured (some runs measure only some)."""
    return f"{label:<52}" + "".join(f" {value!s:>14}" for value in values)


def render(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["summary"]
    p = result["profile"]
    software = f"SQLite {m['sqlite']}" + (f", Celery {m['celery']}, Redis {m['redis_server']}"
                                          if "celery" in m else "")
    lines = [harness.title(result, software),
             f"{p['jobs']} no-op jobs per system per round; {p['submitters']} submitter threads "
             f"(ffrtmp: {p['submit_batch']} jobs per submit request); "
             f"ffrtmp: {p['agents']} agent threads claiming up to {p['slots']} each; "
             f"Celery worker: {' '.join(p['celery_pool'])}",
             "the load generator runs on the same CPUs as the servers",
             harness.load_line(m, "figures are pessimistic"), "", "durability:"]
    first = result["rounds"][0]
    for system in (x for x in SYSTEMS if x in first):
        lines.append(f"  {system}: {first[system]['durability']}")
    if "ffrtmp_routes" in s:
        lines.append(f"  ffrtmp agents' routes: {'; '.join(s['ffrtmp_routes'])}")
    measured = [x for x in SYSTEMS if x in first]
    lines += ["", columns("round (jobs/s)", *measured)]
    for r in result["rounds"]:
        lines.append(columns(f"round {r['round']} (order {', '.join(r['order'])})",
                             *(r[x]["jobs_per_s"] for x in measured)))
    lines.append(columns("median", *(s[f"{x}_median_jobs_per_s"] for x in measured)))
    for key, label in (("vs_celery_fsync", "ffrtmp / celery-fsync per round"),
                       ("vs_celery_default", "ffrtmp / celery-default per round")):
        if f"{key}_ratios" in s:
            lines.append(f"{label}: {s[f'{key}_ratios']}, median {s[f'{key}_median']}")
    if "ffrtmp" in first:
        lines.extend(ffrtmp_rows(result["rounds"]))
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"])])


def ffrtmp_rows(rounds: list[dict[str, Any]]) -> list[str]:
    lines = ["", ROW.format("ffrtmp, per round", "p50 ms", "p99 ms", "max ms")]
    for r in rounds:
        f = r["ffrtmp"]
        for op in ("claim", "start", "result"):
            lat = f["latency"][op]
            lines.append(ROW.format(f"  round {r['round']} {op} latency", lat["p50_ms"], lat["p99_ms"],
                                    lat["max_ms"]))
        lines.append(ROW.format(f"  round {r['round']} cores used: server / client",
                                f["cpu"]["server_cores_used"], f["cpu"]["client_cores_used"], ""))
        lines.append(ROW.format(f"  round {r['round']} CPU ms per job: server / client",
                                f["per_job"]["server_cpu_ms"], f["per_job"]["client_cpu_ms"], ""))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = harness.parser(__doc__, SYSTEMS, "3 rounds of 300 jobs")
    for flag, what in (("submit-batch", "ffrtmp jobs per submit request"),
                       ("agents", "simulated ffrtmp agents"), ("slots", "slots of each agent")):
        parser.add_argument(f"--{flag}", type=int, choices=range(1, 257), metavar="N",
                            help=f"{what}, 1 to 256 (default {getattr(FULL, flag.replace('-', '_'))})")
    parser.add_argument("--results-route", action="store_true",
                        help="ffrtmp agents send results on their own route, not with the next claim")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    chosen: dict[str, Any] = {key: value for key in ("submit_batch", "agents", "slots")
                              if (value := getattr(args, key)) is not None}
    profile = dataclasses.replace(profile, **chosen, results_in_claim=not args.results_route)
    systems = [s for s in SYSTEMS if s in (args.only or SYSTEMS)]
    if any(s.startswith("celery") for s in systems):
        from bench.celery_baseline import missing

        if (why := missing()) is not None:
            print(f"dispatch benchmark: {why}", file=sys.stderr)
            return 1
    return harness.execute(lambda log: run(profile, systems=systems, log=log), render, args.out)


if __name__ == "__main__":
    sys.exit(main())
