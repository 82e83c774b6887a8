"""Master benchmark: claim long-poll latency, no-op dispatch throughput, heartbeat load.

Each scenario starts a real ``ffrtmp master`` (gunicorn with its default workers and
threads) on free loopback ports with a fresh temporary SQLite file, drives it over HTTP the
way agents and operators do, and stops it. The figures are compared with the goals of the
master's performance contract and printed as a table and as JSON; the JSON is also written
to ``bench/results/master-<timestamp>.json``.

The load generator runs on the same machine and shares its CPUs with the server, so every
phase also reports the CPU time the client and the server used: a low figure can be the
client's fault, and the CPU split says how much.

    python bench/master_bench.py            # full run, 2 to 3 minutes
    python bench/master_bench.py --quick    # small counts, under a minute
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from bench import harness
from bench.harness import REQUEST_TIMEOUT_S, Log, Run
from bench.master_client import Workers, running_master
from bench.master_scenarios import FULL, QUICK, Profile, bench_claim_latency, bench_dispatch, bench_heartbeat

GOALS = harness.goals_of("master")
SCENARIOS = ("latency", "dispatch", "heartbeat")


# --- the machine ---


def probe_storage(directory: Path, commits: int = 300) -> dict[str, float]:
    """fsync cost and SQLite WAL commit rates where the database lives: the store's ceiling."""
    probe: dict[str, float] = {}
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(100):
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        probe["fsync_ms"] = round((time.perf_counter() - started) * 10, 3)
    finally:
        os.close(fd)
        path.unlink()
    for mode in ("FULL", "NORMAL"):
        db = directory / f"probe-{mode}.db"
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {mode}")
            conn.execute("CREATE TABLE t (v INTEGER)")
            started = time.perf_counter()
            for i in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (i,))
                conn.execute("COMMIT")
            probe[f"sqlite_wal_{mode.lower()}_commits_per_s"] = round(
                commits / (time.perf_counter() - started))
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    return probe


def machine(directory: Path, commits: int) -> dict[str, Any]:
    """What the figures depend on: CPUs, storage, and how busy the machine already was."""
    return {**harness.machine(sqlite=sqlite3.sqlite_version, client_shares_cpus_with_server=True),
            **probe_storage(directory, commits)}


# --- the run ---


def master_defaults() -> dict[str, Any]:
    """The settings every scenario's master runs with: the defaults, read from the settings table."""
    from ffrtmp.config import BY_NAME

    names = ("workers", "threads", "lease", "claim_wait_max", "heartbeat_interval", "node_timeout")
    return {"worker_class": "gthread", "database": "sqlite (WAL)",
            **{name: BY_NAME[name].default for name in names}}


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    measured: dict[str, float] = {}
    if "claim_latency" in result:
        measured["claim_latency_p50_ms"] = result["claim_latency"]["latency"]["p50_ms"]
        measured["claim_latency_p99_ms"] = result["claim_latency"]["latency"]["p99_ms"]
    if "dispatch" in result:
        measured["dispatch_jobs_per_s"] = max(r["jobs_per_s"] for r in result["dispatch"])
    if "heartbeat" in result:
        measured["heartbeat_p99_ms"] = result["heartbeat"]["latency"]["p99_ms"]
    return harness.verdict(GOALS, measured)


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: Log = print,
        workdir: Path | None = None, spy_dir: Path | None = None) -> dict[str, Any]:
    """Run the chosen scenarios, each against its own fresh master; return the result dict."""
    frame = Run(profile)
    result = {**frame.header("master"), "master": master_defaults()}
    with harness.scratch(workdir, "ffrtmp-bench-") as base:
        log("probing storage …")
        result["machine"] = machine(base, profile.probe_commits)
        if "latency" in scenarios:
            log(f"claim latency: {profile.latency_agents} long-polling agents, "
                f"{profile.latency_jobs} jobs one at a time …")
            agents = Workers()
            with running_master(base, "latency", spy_dir) as master:
                result["claim_latency"] = bench_claim_latency(master, profile, agents)
            agents.join(REQUEST_TIMEOUT_S)  # their long-polls ended with the master
        frame.check_deadline()
        if "dispatch" in scenarios:
            log(f"dispatch: {profile.dispatch_jobs} no-op jobs per round, agents {profile.dispatch_agents} …")
            with running_master(base, "dispatch", spy_dir) as master:
                result["dispatch"] = bench_dispatch(master, profile)
        frame.check_deadline()
        if "heartbeat" in scenarios:
            log(f"heartbeats: {profile.heartbeat_nodes} nodes at {profile.heartbeat_rate:g}/s "
                f"for {profile.heartbeat_window_s:g} s …")
            with running_master(base, "heartbeat", spy_dir) as master:
                result["heartbeat"] = bench_heartbeat(master, profile)
    return frame.finish(result, goals)


# --- the report ---

ROW = "{:<44} {:>12} {:>12} {:>12}"


def render(result: dict[str, Any]) -> str:
    """The human table: one line per figure, goals marked met or missed."""
    m = result["machine"]
    lines = [harness.title(result, f"SQLite {m['sqlite']}"),
             f"storage: fsync {m['fsync_ms']} ms; WAL commits/s synchronous=FULL "
             f"{m['sqlite_wal_full_commits_per_s']}, NORMAL {m['sqlite_wal_normal_commits_per_s']}",
             "the load generator runs on the same CPUs as the master; CPU columns show the split",
             harness.load_line(m, "figures are pessimistic"),
             "", ROW.format("figure", "p50/value", "p99", "max")]
    if "claim_latency" in result:
        c = result["claim_latency"]
        lat = c["latency"]
        lines.append(ROW.format(f"claim latency, {c['agents']} idle agents (ms)",
                                lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
        lines.append(ROW.format(f"  idle long-poll: server cores used ({c['agents']} agents)",
                                c["idle"]["server_cores_used"], "", ""))
    for r in result.get("dispatch", []):
        lines.extend(dispatch_rows(r))
    if "heartbeat" in result:
        lines.extend(heartbeat_rows(result["heartbeat"]))
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"])])


def dispatch_rows(r: dict[str, Any]) -> list[str]:
    k = r["agents"]
    lines = [ROW.format(f"submit, {k} threads (jobs/s)", r["submit"]["jobs_per_s"], "", ""),
             ROW.format(f"dispatch, {k} agents (jobs/s)", r["jobs_per_s"], "", ""),
             ROW.format("  agent requests/s vs /health requests/s", r["requests_per_s"],
                        r["health"]["requests_per_s"], f"{r['vs_health']:.0%}")]
    for op in ("claim", "start", "result"):
        lat = r["latency"][op]
        lines.append(ROW.format(f"  {op} latency (ms)", lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
    per, health = r["per_job"], r["health"]["per_request"]
    return [*lines,
            ROW.format("  cores used: server / client", r["cpu"]["server_cores_used"],
                       r["cpu"]["client_cores_used"], ""),
            ROW.format("  CPU ms per job: server / client", per["server_cpu_ms"], per["client_cpu_ms"], ""),
            ROW.format("  jobs/s if CPU-bound: shared / server-only", per["cpu_bound_per_s"],
                       per["server_only_per_s"], ""),
            ROW.format("  /health CPU ms per request: server / client", health["server_cpu_ms"],
                       health["client_cpu_ms"], "")]


def heartbeat_rows(h: dict[str, Any]) -> list[str]:
    lat, lag = h["latency"], h["schedule_lag"]
    lines = [ROW.format(f"heartbeat, {h['nodes']} nodes @ {h['achieved_rate_per_s']}/s (ms)",
                        lat["p50_ms"], lat["p99_ms"], lat["max_ms"]),
             ROW.format("  client schedule lag (ms)", lag["p50_ms"], lag["p99_ms"], lag["max_ms"]),
             ROW.format("  cores used: server / client", h["cpu"]["server_cores_used"],
                        h["cpu"]["client_cores_used"], ""),
             ROW.format("  CPU ms per heartbeat: server / client",
                        h["per_heartbeat"]["server_cpu_ms"], h["per_heartbeat"]["client_cpu_ms"], ""),
             ROW.format("  registrations/s", h["register_per_s"], "", "")]
    if set(h["statuses"]) != {"200"}:
        lines.append(f"  heartbeat answers by status: {h['statuses']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    cli = harness.parser(__doc__, SCENARIOS, "small counts (under a minute)")
    cli.add_argument("--py-spy", type=Path, metavar="DIR", dest="spy_dir",
                     help="sample the master with py-spy into DIR/<scenario>.txt (lowers the figures)")
    args = cli.parse_args(argv)
    profile = QUICK if args.quick else FULL
    return harness.execute(lambda log: run(profile, scenarios=args.only or SCENARIOS, spy_dir=args.spy_dir,
                                           log=log),
                           render, args.out, with_json=True)


if __name__ == "__main__":
    sys.exit(main())
