"""Queue-depth benchmark: claim latency, a claim's write transaction and a /metrics scrape, by depth.

For each depth (0, 10k, 100k queued jobs: half need a GPU encoder no node has, half an encoder
only a busy node elsewhere has, so the 10 idle nodes can run none of them and the depth
holds), the queue is filled in-process through the store (``bench/depth_store.py``) before a
real master (gunicorn, default settings, SQLite) starts on it. Then:

1. 10 idle agents (threads) long-poll ``POST /nodes/{id}/claim``; runnable jobs are submitted
   one at a time and submit-acknowledged → claim-answer-received is timed (p50, p99, max),
   every answer's status counted (a 5xx must never happen);
2. ``GET /metrics`` is timed over HTTP.

At the deepest depth, with the master stopped, claims are timed in-process inside the write
transaction (BEGIN acquired → COMMIT done, by a subclass of the store); then 1M finished jobs
are added and ``/metrics`` is timed again on a fresh master.

    python bench/depth_bench.py            # 0 / 10k / 100k, 200 jobs each; 1M finished
    python bench/depth_bench.py --quick    # 0 / 2k / 10k, 40 jobs each; 100k finished
"""

from __future__ import annotations

import dataclasses
import queue
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from tests.processes import wait_until

from bench import depth_store, harness
from bench.harness import REQUEST_TIMEOUT_S, BenchError, Log, summarize
from bench.master_client import Master, Node, Workers, register_nodes

GOALS = harness.goals_of("depth")
SCENARIOS = ("latency", "transaction", "metrics")


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    depths: tuple[int, ...] = (0, 10_000, 100_000)
    agents: int = 10
    jobs: int = 200  # runnable jobs submitted one at a time, per depth
    gap_s: tuple[float, float] = (0.05, 0.1)  # pause between one claim and the next submit
    wait_s: float = 20.0
    tx_claims: int = 200  # in-process claims of each kind at the deepest depth
    finished: int = 1_000_000
    scrapes: int = 30
    deadline_s: float = 1200.0


FULL = Profile("full")
QUICK = Profile("quick", depths=(0, 2_000, 10_000), jobs=40, tx_claims=40, finished=100_000, scrapes=10,
                deadline_s=400.0)


def label(depth: int) -> str:
    return f"{depth // 1000}k" if depth >= 1000 else str(depth)


class Statuses:
    """Every HTTP answer's status, counted across threads."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, reply: requests.Response) -> bool:
        with self._lock:
            key = str(reply.status_code)
            self.counts[key] = self.counts.get(key, 0) + 1
        return reply.status_code < 300

    def server_errors(self) -> int:
        return sum(n for status, n in self.counts.items() if status.startswith("5"))


class IdleAgents:
    """Agents that long-poll, finish what they claim, and say when they got it."""

    def __init__(self, master: Master, profile: Profile, statuses: Statuses) -> None:
        self.master, self.profile, self.statuses = master, profile, statuses
        self.claimed: queue.Queue[tuple[str, float]] = queue.Queue()
        self.stop = threading.Event()
        self.workers = Workers()

    def agent(self, node: Node) -> None:
        session = self.master.session(node.credential)
        url = f"{self.master.url}/api/v1/nodes/{node.id}/claim"
        while not self.stop.is_set():
            try:
                reply = session.post(url, json={"slots": 1, "wait_s": self.profile.wait_s},
                                     timeout=self.profile.wait_s + REQUEST_TIMEOUT_S)
            except requests.ConnectionError:
                if self.stop.is_set():
                    return
                raise
            received = time.perf_counter()
            if not self.statuses.note(reply):
                time.sleep(0.1)  # a real agent backs off and asks again
                continue
            for a in reply.json()["assignments"]:
                self.claimed.put((a["job_id"], received))
                token = {"attempt_token": a["attempt_token"]}
                base = f"{self.master.url}/api/v1/jobs/{a['job_id']}"
                done = {**token, "outcome": "succeeded", "exit_code": 0}
                self.statuses.note(session.post(f"{base}/start", json=token, timeout=REQUEST_TIMEOUT_S))
                self.statuses.note(session.post(f"{base}/result", json=done, timeout=REQUEST_TIMEOUT_S))


def probe_latency(master: Master, profile: Profile) -> dict[str, Any]:
    """Submit runnable jobs one at a time to idle long-polling agents; time submit → claimed."""
    statuses = Statuses()
    nodes, _ = register_nodes(master, profile.agents, prefix="idle", threads=profile.agents)
    agents = IdleAgents(master, profile, statuses)
    for node in nodes:
        agents.workers.spawn(agents.agent, node)
    ops, rng, latencies = master.session(), random.Random(3), []
    try:
        wait_until(lambda: master.claims_waiting() == profile.agents, 30.0, "every agent waiting")
        for _ in range(profile.jobs):
            time.sleep(rng.uniform(*profile.gap_s))
            reply = ops.post(master.url + "/api/v1/jobs", json=master.spec(), timeout=REQUEST_TIMEOUT_S)
            acknowledged = time.perf_counter()
            if not statuses.note(reply):
                continue
            job_id, received = agents.claimed.get(timeout=REQUEST_TIMEOUT_S)
            if job_id != reply.json()["job"]["id"]:
                raise BenchError(f"claimed {job_id}, expected {reply.json()['job']['id']}")
            latencies.append(max(0.0, received - acknowledged))
            agents.workers.check()
    except (AssertionError, queue.Empty) as exc:
        agents.workers.check()
        raise BenchError(f"a submitted job was not claimed: {exc}") from None
    finally:
        agents.stop.set()
    return {"agents": profile.agents, "jobs": len(latencies), "latency": summarize(latencies),
            "statuses": statuses.counts, "server_errors": statuses.server_errors(), "workers": agents.workers}


def scrape(master: Master, count: int) -> dict[str, Any]:
    """``GET /metrics`` ``count`` times, one after the other, on a fresh connection each."""
    times, size = [], 0
    for _ in range(count):
        sent = time.perf_counter()
        reply = requests.get(master.metrics_url + "/metrics", timeout=REQUEST_TIMEOUT_S)
        times.append(time.perf_counter() - sent)
        if reply.status_code != 200:
            raise BenchError(f"/metrics: {reply.status_code} {reply.text[:300]}\n{log_tail(master)}")
        size = len(reply.content)
    return {"scrapes": count, "bytes": size, **summarize(times)}


def log_tail(master: Master, chars: int = 3000) -> str:
    """The end of the master's own logs: why it answered 500."""
    texts = [p.read_text(errors="replace") for p in sorted((master.dir / "log").rglob("*")) if p.is_file()]
    return "".join(texts)[-chars:]


def queued_in(master: Master) -> float:
    text = requests.get(master.metrics_url + "/metrics", timeout=REQUEST_TIMEOUT_S).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("ffrtmp_jobs_pending"))


def store_of(master: Master) -> depth_store.TimedStore:
    store = depth_store.TimedStore(master.env["FFRTMP_DATABASE"].removeprefix("sqlite:///"))
    store.migrate()
    return store


def one_depth(base: Path, profile: Profile, depth: int, log: Log, *,
              probe: bool = True) -> tuple[dict[str, Any], Master]:
    """Fill, start a master, measure latency and a scrape (unless not ``probe``); the master is
    stopped, its files kept."""
    master = Master(base, f"depth-{label(depth)}")
    store = store_of(master)
    log(f"depth {label(depth)}: filling the queue in-process …")
    fill_s = depth_store.fill_queued(store, master.media, depth)
    store.close()
    if not probe:
        return {"depth": depth, "fill_s": round(fill_s, 2)}, master
    master.start()
    try:
        log(f"depth {label(depth)}: {profile.agents} idle agents, {profile.jobs} jobs one at a time …")
        figures = {"depth": depth, "fill_s": round(fill_s, 2), "queued_seen": queued_in(master),
                   **probe_latency(master, profile), "metrics": scrape(master, profile.scrapes)}
        workers = figures.pop("workers")
    finally:
        master.stop()
    workers.join(REQUEST_TIMEOUT_S)  # their long-polls ended with the master
    return figures, master


def deepest(master: Master, profile: Profile, log: Log, scenarios: Sequence[str]) -> dict[str, Any]:
    """On the deepest depth's files: claims inside the write transaction, then 1M finished and a scrape."""
    out: dict[str, Any] = {}
    store = store_of(master)
    try:
        if "transaction" in scenarios:
            log(f"claims in-process at {label(profile.depths[-1])} queued: "
                f"{profile.tx_claims} of each kind …")
            tx = depth_store.claim_transactions(store, master.media, profile.tx_claims)
            out["transaction"] = {"claims": tx["claims"], "write_tx": summarize(tx["write_tx_s"]),
                                  **{f"claim_{k}": summarize(v) for k, v in tx["claim_s"].items()}}
        if "metrics" in scenarios:
            log(f"adding {profile.finished:,} finished jobs …")
            took = depth_store.fill_finished(store, master.media, profile.finished)
            out["finished_fill_s"] = round(took, 2)
    finally:
        store.close()
    if "metrics" in scenarios:
        master.start()
        try:
            out["metrics_full"] = {"queued": profile.depths[-1], "finished": profile.finished,
                                   **scrape(master, profile.scrapes)}
        finally:
            master.stop()
    return out


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: Log = print,
        workdir: Path | None = None) -> dict[str, Any]:
    frame = harness.Run(profile)
    result: dict[str, Any] = {**frame.header("depth"),
                              "machine": harness.machine(sqlite=sqlite3.sqlite_version,
                                                         client_shares_cpus_with_server=True),
                              "backlog": {"half_requires": depth_store.GPU,
                                          "other_half_requires": depth_store.ELSEWHERE,
                                          "idle_nodes_have": depth_store.IDLE_ENCODERS}}
    with harness.scratch(workdir, "ffrtmp-depth-bench-") as base:
        result["depths"] = []
        master = None
        probe = "latency" in scenarios
        for depth in profile.depths if probe else profile.depths[-1:]:
            frame.check_deadline()
            figures, master = one_depth(base, profile, depth, log, probe=probe)
            result["depths"].append(figures)
        if master is not None and ({"transaction", "metrics"} & set(scenarios)):
            frame.check_deadline()
            result.update(deepest(master, profile, log, scenarios))
    return frame.finish(result, goals)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    measured: dict[str, float] = {}
    probed = [d for d in result["depths"] if "latency" in d]
    for d in probed:
        key = f"claim_p99_ms_depth_{label(d['depth'])}"
        if key in GOALS:
            measured[key] = d["latency"]["p99_ms"]
    if probed:
        measured["http_5xx"] = float(sum(d["server_errors"] for d in probed))
    if "transaction" in result:
        measured["claim_tx_worst_ms"] = result["transaction"]["write_tx"]["max_ms"]
    if "metrics_full" in result:
        measured["metrics_scrape_ms"] = result["metrics_full"]["p50_ms"]
    return harness.verdict(GOALS, measured)


# --- the report ---

ROW = "{:<52} {:>9} {:>9} {:>9}"


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    b = result["backlog"]
    lines = [harness.title(result, f"SQLite {m['sqlite']}"),
             f"backlog: half requires {b['half_requires']}, half {b['other_half_requires']}; "
             f"the idle nodes have {', '.join(b['idle_nodes_have'])}",
             harness.load_line(m, "figures are pessimistic"), "",
             ROW.format("figure", "p50", "p99", "max")]
    for d in (d for d in result["depths"] if "latency" in d):
        lat, met = d["latency"], d["metrics"]
        lines.append(ROW.format(f"submit → claimed at {label(d['depth'])} queued, {d['agents']} idle (ms)",
                                lat["p50_ms"], lat["p99_ms"], lat["max_ms"]))
        lines.append(ROW.format(f"  /metrics at {label(d['depth'])} queued (ms)", met["p50_ms"],
                                met["p99_ms"], met["max_ms"]))
        lines.append(f"  answers by status: {d['statuses']}; 5xx: {d['server_errors']}; "
                     f"filled in {d['fill_s']} s; /metrics saw {d['queued_seen']:g} queued")
    if "transaction" in result:
        t = result["transaction"]
        lines.append(ROW.format(f"claim's write transaction, 3 x {t['claims']} claims (ms)",
                                t["write_tx"]["p50_ms"], t["write_tx"]["p99_ms"], t["write_tx"]["max_ms"]))
        for kind in ("runnable", "deep_set", "nothing_runnable"):
            c = t[f"claim_{kind}"]
            lines.append(ROW.format(f"  whole claim(), {kind.replace('_', ' ')} (ms)", c["p50_ms"],
                                    c["p99_ms"], c["max_ms"]))
    if "metrics_full" in result:
        f = result["metrics_full"]
        lines.append(ROW.format(f"/metrics at {label(f['queued'])} queued + {f['finished']:,} finished (ms)",
                                f["p50_ms"], f["p99_ms"], f["max_ms"]))
        lines.append(f"  {f['finished']:,} finished jobs added in {result['finished_fill_s']} s")
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"])])


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parser(__doc__, SCENARIOS, "0 / 2k / 10k queued, 100k finished").parse_args(argv)
    profile = QUICK if args.quick else FULL
    return harness.execute(lambda log: run(profile, scenarios=args.only or SCENARIOS, log=log),
                           render, args.out)


if __name__ == "__main__":
    sys.exit(main())
