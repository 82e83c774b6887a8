"""Several-masters benchmark: heartbeat and claim capacity of two masters on one PostgreSQL,
against one master on SQLite (the baseline), in the same invocation.

Two setups, each started fresh and stopped after its scenarios, in this order:

1. ``sqlite``: one real ``ffrtmp master`` (gunicorn, default settings, SQLite WAL).
2. ``postgres-2``: two real masters on one throwaway PostgreSQL cluster (fsync on, the
   distribution's server with its defaults otherwise).

Simulated agents are client threads sending real requests with real node credentials; in
the pair, node *i* talks to master *i mod 2* (as if half the workers listed the other master
first). Each setup runs:

- ``claims``: closed loop, K agents each sending empty claims (``wait_s`` 0) as fast as
  answers come back: claims/s and latency;
- ``heartbeat``: open loop at a fixed rate (each heartbeat has a due time; a late client sends
  at once and reports its lag): latency at that load;
- ``ramp``: N agents, each sending one heartbeat and one empty claim every 10 s (spread evenly
  over the interval), for N rising step by step until heartbeat p99 exceeds 100 ms (or the
  client itself falls behind, which makes the step inconclusive): the largest N held.

The report gives each figure for both setups and the pair's ratio to the baseline. The load
generator shares the machine's CPUs with the servers; CPU columns show the split.

    python bench/ha_bench.py            # full run, about 10 minutes
    python bench/ha_bench.py --quick    # small counts, about 2 minutes
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

import requests
from tests import pg_cluster
from tests.processes import free_port, write_tokens

from bench import harness
from bench.harness import REQUEST_TIMEOUT_S, BenchError, Log, Run, summarize
from bench.master_client import CpuMeter, Master, Node, Workers, register_nodes

SCENARIOS = ("claims", "heartbeat", "ramp")
SETUPS = ("sqlite", "postgres-2")
P99_GOAL_MS = 100.0
GOALS: harness.Goals = {"pair_heartbeat_p99_ms": ("<=", P99_GOAL_MS)}


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much work each scenario does; every count and duration is bounded."""

    name: str
    claim_agents: int = 16
    claim_window_s: float = 10.0
    heartbeat_nodes: int = 2000
    heartbeat_rate: float = 200.0  # per second, over all masters of the setup
    heartbeat_window_s: float = 20.0
    ramp: tuple[int, ...] = (250, 500, 1000, 2000, 4000, 8000)
    agent_interval_s: float = 10.0  # each simulated agent's heartbeat (and claim) interval
    ramp_window_s: float = 20.0
    client_threads: int = 32  # open-loop senders, shared by all simulated agents
    register_threads: int = 8
    deadline_s: float = 1500.0  # the whole run stops by then, finished or not


FULL = Profile("full")
QUICK = Profile("quick", claim_window_s=3.0, heartbeat_nodes=200, heartbeat_rate=40.0,
                heartbeat_window_s=5.0, ramp=(200, 400, 800), ramp_window_s=10.0, deadline_s=600.0)


# --- the setups ---


def pair(base: Path, database: str) -> list[Master]:
    """Two masters on one database, sharing their operator and enrollment tokens."""
    masters = [Master(base, f"postgres-{name}") for name in ("a", "b")]
    first, second = masters
    second.operator_token, second.enroll_token = first.operator_token, first.enroll_token
    write_tokens(second.dir, first.operator_token, first.enroll_token)
    for master in masters:
        master.env["FFRTMP_DATABASE"] = database
    return masters


@contextlib.contextmanager
def running_setup(base: Path, setup: str) -> Iterator[list[Master]]:
    """The setup's masters, started (one at a time: the first migrates) and stopped after."""
    with contextlib.ExitStack() as stack:
        if setup == "sqlite":
            masters = [Master(base, "sqlite")]
        else:
            try:
                cluster = stack.enter_context(pg_cluster.running(free_port(), fsync=True))
            except RuntimeError as exc:
                raise BenchError(str(exc)) from None
            masters = pair(base, cluster.url)
        for master in masters:
            stack.callback(master.stop)  # run in reverse, before the cluster stops
            master.start()
        yield masters


class Meter:
    """CPU of every master of a setup (summed) and of this client, over one window."""

    def __init__(self, masters: Sequence[Master]) -> None:
        self.meters = [CpuMeter(m.pid) for m in masters]
        self.result: dict[str, float] = {}

    def __enter__(self) -> Meter:
        for meter in self.meters:
            meter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for meter in self.meters:
            meter.__exit__(*exc)
        first = self.meters[0].result
        server = sum(m.result["server_cpu_s"] for m in self.meters)
        self.result = {"wall_s": first["wall_s"], "server_cpu_s": round(server, 3),
                       "client_cpu_s": first["client_cpu_s"],
                       "server_cores_used": round(server / first["wall_s"], 2) if first["wall_s"] else 0.0,
                       "client_cores_used": first["client_cores_used"]}


@dataclasses.dataclass(frozen=True)
class Agent:
    """A simulated agent: its node and the master it talks to."""

    node: Node
    master: Master


def register(masters: Sequence[Master], count: int, prefix: str, threads: int) -> list[Agent]:
    """``count`` nodes, registered on the masters in turn; node i talks to master i mod n."""
    groups = []
    for index, master in enumerate(masters):
        share = count // len(masters) + (index < count % len(masters))
        nodes, _ = register_nodes(master, share, prefix=f"{prefix}{index}-", threads=threads)
        groups.append([Agent(node, master) for node in nodes])
    return [agent for row in itertools.zip_longest(*groups) for agent in row if agent is not None]


# --- the requests ---

HEARTBEAT = {"running": [], "free_slots": 1}
EMPTY_CLAIM = {"slots": 1, "wait_s": 0}  # nothing is queued in this benchmark: every claim is empty


def send(session: requests.Session, agent: Agent, kind: str) -> tuple[float, int]:
    """One heartbeat or claim as the agent's node; its latency and HTTP status."""
    url = f"{agent.master.url}/api/v1/nodes/{agent.node.id}/{kind}"
    sent = time.perf_counter()
    reply = session.post(url, json=HEARTBEAT if kind == "heartbeat" else EMPTY_CLAIM,
                         headers={"Authorization": f"Bearer {agent.node.credential}"},
                         timeout=REQUEST_TIMEOUT_S)
    return time.perf_counter() - sent, reply.status_code


@dataclasses.dataclass
class Tally:
    """What one client thread saw, per kind of request."""

    latency: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {"heartbeat": [], "claim": []})
    lag: list[float] = dataclasses.field(default_factory=list)
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, latency: float, status: int, lag: float | None = None) -> None:
        self.latency[kind].append(latency)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if lag is not None:
            self.lag.append(lag)


def merged(tallies: Sequence[Tally], wall_s: float) -> dict[str, Any]:
    """Every thread's tally as one: latency per kind, schedule lag, statuses, rate."""
    statuses: dict[str, int] = {}
    for tally in tallies:
        for status, n in tally.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    out: dict[str, Any] = {"requests": sum(statuses.values()), "statuses": statuses,
                           "schedule_lag": summarize([x for t in tallies for x in t.lag])}
    out["requests_per_s"] = round(out["requests"] / wall_s, 1) if wall_s else 0.0
    for kind in ("heartbeat", "claim"):
        out[kind] = summarize([x for t in tallies for x in t.latency[kind]])
    return out


def sessions_for(masters: Sequence[Master]) -> dict[str, requests.Session]:
    """One kept-alive session per master for one client thread (closed when its master stops)."""
    return {m.url: m.session(auth=False) for m in masters}


# --- scenario 1: empty claims, closed loop ---


def bench_claims(masters: Sequence[Master], agents: Sequence[Agent], window_s: float) -> dict[str, Any]:
    """Each agent sends its next empty claim as soon as the last is answered, for ``window_s``."""
    tallies = [Tally() for _ in agents]
    start = threading.Barrier(len(agents) + 1)
    until = [float("inf")]
    workers = Workers()

    def client(index: int) -> None:
        agent = agents[index]
        session = agent.master.session(auth=False)
        start.wait()
        while time.perf_counter() < until[0]:
            latency, status = send(session, agent, "claim")
            tallies[index].add("claim", latency, status)

    for index in range(len(agents)):
        workers.spawn(client, index)
    with Meter(masters) as cpu:
        until[0] = time.perf_counter() + window_s
        start.wait()
        workers.join(window_s + REQUEST_TIMEOUT_S * 2)
    workers.check()
    figures = merged(tallies, cpu.result["wall_s"])
    return {"agents": len(agents), "window_s": window_s, "claims_per_s": figures["requests_per_s"],
            "latency": figures["claim"], "statuses": figures["statuses"], "cpu": cpu.result}


# --- scenarios 2 and 3: open loop, each request at its due time ---

Event = tuple[float, str, Agent]  # due (seconds from the start), heartbeat or claim, who


def open_loop(masters: Sequence[Master], events: Sequence[Event], threads: int) -> dict[str, Any]:
    """Send every event at its due time from ``threads`` threads; a late thread sends at once
    and records how late, so a slow server cannot hide by slowing the client down."""
    ordered = sorted(events, key=lambda e: e[0])
    threads = max(1, min(threads, len(ordered)))
    tallies = [Tally() for _ in range(threads)]
    ready = threading.Barrier(threads + 1)
    epoch = [0.0]
    workers = Workers()

    def client(index: int) -> None:
        sessions = sessions_for(masters)
        ready.wait()
        for due, kind, agent in ordered[index::threads]:
            at = epoch[0] + due
            if (pause := at - time.perf_counter()) > 0:
                time.sleep(pause)
            lag = max(0.0, time.perf_counter() - at)
            latency, status = send(sessions[agent.master.url], agent, kind)
            tallies[index].add(kind, latency, status, lag)

    for index in range(threads):
        workers.spawn(client, index)
    span = ordered[-1][0] if ordered else 0.0
    with Meter(masters) as cpu:
        epoch[0] = time.perf_counter() + 0.05
        ready.wait()
        workers.join(span + REQUEST_TIMEOUT_S * 4)
    workers.check()
    return {**merged(tallies, cpu.result["wall_s"]), "threads": threads, "cpu": cpu.result}


def bench_heartbeat(masters: Sequence[Master], agents: Sequence[Agent], profile: Profile) -> dict[str, Any]:
    """Heartbeats at ``heartbeat_rate`` per second, the nodes in turn."""
    total = int(profile.heartbeat_rate * profile.heartbeat_window_s)
    events = [(k / profile.heartbeat_rate, "heartbeat", agents[k % len(agents)]) for k in range(total)]
    figures = open_loop(masters, events, profile.client_threads)
    return {"nodes": len(agents), "target_rate_per_s": profile.heartbeat_rate,
            "window_s": profile.heartbeat_window_s, **figures}


def agent_schedule(agents: Sequence[Agent], interval_s: float, window_s: float) -> list[Event]:
    """Each agent heartbeats every ``interval_s`` and claims half an interval later; the agents'
    phases are spread evenly over the interval, as agents started at random times would be."""
    events: list[Event] = []
    for i, agent in enumerate(agents):
        phase = i * interval_s / len(agents)
        for offset, kind in ((0.0, "heartbeat"), (interval_s / 2, "claim")):
            due = (phase + offset) % interval_s  # so every agent sends as many of each kind
            while due < window_s:
                events.append((due, kind, agent))
                due += interval_s
    return events


def ramp_step(masters: Sequence[Master], agents: Sequence[Agent], profile: Profile) -> dict[str, Any]:
    """N agents at their interval for one window; held if heartbeat p99 and every answer are fine.

    A client that fell behind its schedule (lag p99 over the goal) measured itself, not the
    masters: the step is inconclusive and the ramp stops there.
    """
    figures = open_loop(masters, agent_schedule(agents, profile.agent_interval_s, profile.ramp_window_s),
                        profile.client_threads)
    ok = set(figures["statuses"]) == {"200"}
    client_behind = figures["schedule_lag"]["p99_ms"] > P99_GOAL_MS
    held = ok and not client_behind and figures["heartbeat"]["p99_ms"] <= P99_GOAL_MS
    return {"agents": len(agents), "interval_s": profile.agent_interval_s, **figures,
            "held": held, "client_behind": client_behind}


def bench_ramp(masters: Sequence[Master], profile: Profile, frame: Run, log: Log) -> dict[str, Any]:
    """Step up the agent count until a step is not held; the largest held is the capacity."""
    agents: list[Agent] = []
    steps: list[dict[str, Any]] = []
    for count in profile.ramp:
        if len(agents) < count:
            agents += register(masters, count - len(agents), f"r{count}-", profile.register_threads)
        step = ramp_step(masters, agents[:count], profile)
        steps.append(step)
        log(f"  {count} agents: heartbeat p99 {step['heartbeat']['p99_ms']} ms, claim p99 "
            f"{step['claim']['p99_ms']} ms, client lag p99 {step['schedule_lag']['p99_ms']} ms")
        frame.check_deadline()
        if not step["held"]:
            break
    held = [s["agents"] for s in steps if s["held"]]
    last = steps[-1] if steps else {}
    return {"steps": steps, "held_agents": max(held, default=0),
            "stopped_by": ("the top of the ramp" if last.get("held") else
                           "the client falling behind (inconclusive)" if last.get("client_behind") else
                           "heartbeat p99 or an error answer")}


# --- the run ---


def measure_setup(base: Path, setup: str, profile: Profile, scenarios: Sequence[str], frame: Run,
                  log: Log) -> dict[str, Any]:
    """Start the setup, run the chosen scenarios against it, stop it."""
    result: dict[str, Any] = {}
    with running_setup(base, setup) as masters:
        result["masters"] = len(masters)
        if "claims" in scenarios:
            log(f"{setup}: {profile.claim_agents} agents claiming for {profile.claim_window_s:g} s …")
            agents = register(masters, profile.claim_agents, "c-", profile.register_threads)
            result["claims"] = bench_claims(masters, agents, profile.claim_window_s)
        frame.check_deadline()
        if "heartbeat" in scenarios:
            log(f"{setup}: heartbeats of {profile.heartbeat_nodes} nodes at {profile.heartbeat_rate:g}/s …")
            agents = register(masters, profile.heartbeat_nodes, "h-", profile.register_threads)
            result["heartbeat"] = bench_heartbeat(masters, agents, profile)
        frame.check_deadline()
        if "ramp" in scenarios:
            log(f"{setup}: agents at a {profile.agent_interval_s:g} s heartbeat, ramp {profile.ramp} …")
            result["ramp"] = bench_ramp(masters, profile, frame, log)
    return result


# figure -> where it sits in a setup's result
RATIO_FIGURES = {"claims_per_s": ("claims", "claims_per_s"),
                 "claim_p99_ms": ("claims", "latency", "p99_ms"),
                 "heartbeat_p99_ms": ("heartbeat", "heartbeat", "p99_ms"),
                 "held_agents": ("ramp", "held_agents")}


def figure(setup: dict[str, Any], path: Sequence[str]) -> float | None:
    value: Any = setup
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def ratios(single: dict[str, Any], paired: dict[str, Any]) -> dict[str, float]:
    """The pair's figure over the baseline's (above 1: more per second, or a longer p99)."""
    out = {}
    for name, path in RATIO_FIGURES.items():
        a, b = figure(single, path), figure(paired, path)
        if a and b is not None:
            out[name] = round(b / a, 3)
    return out


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    paired = result["setups"].get("postgres-2", {})
    measured = {}
    if "heartbeat" in paired:
        measured["pair_heartbeat_p99_ms"] = paired["heartbeat"]["heartbeat"]["p99_ms"]
    return harness.verdict(GOALS, measured)


def run(profile: Profile, *, scenarios: Sequence[str] = SCENARIOS, log: Log = print,
        workdir: Path | None = None) -> dict[str, Any]:
    """Both setups, the baseline first; return the result dict."""
    frame = Run(profile)
    result: dict[str, Any] = {**frame.header("ha"), "setups": {},
                              "machine": harness.machine(client_shares_cpus_with_server=True)}
    with harness.scratch(workdir, "ffrtmp-ha-bench-") as base:
        for setup in SETUPS:
            result["setups"][setup] = measure_setup(base, setup, profile, scenarios, frame, log)
            frame.check_deadline()
    result["ratios"] = ratios(result["setups"]["sqlite"], result["setups"]["postgres-2"])
    return frame.finish(result, goals)


# --- the report ---

ROW = "{:<46} {:>14} {:>14} {:>10}"


def render(result: dict[str, Any]) -> str:
    """One line per figure: the baseline, the pair, and the pair's ratio to the baseline."""
    single, paired = result["setups"]["sqlite"], result["setups"]["postgres-2"]
    lines = [harness.title(result, "one master on SQLite against two on one PostgreSQL"),
             "the load generator runs on the same CPUs as the masters",
             harness.load_line(result["machine"], "figures are pessimistic"), "",
             ROW.format("figure", "sqlite (1)", "postgres (2)", "ratio")]
    for name, path in RATIO_FIGURES.items():
        a, b = figure(single, path), figure(paired, path)
        if a is None and b is None:
            continue
        lines.append(ROW.format(name, "-" if a is None else f"{a:g}", "-" if b is None else f"{b:g}",
                                result["ratios"].get(name, "-")))
    for setup, figures in (("sqlite", single), ("postgres-2", paired)):
        lines.extend(ramp_lines(setup, figures.get("ramp")))
    return "\n".join([*lines, "", *harness.goal_lines(result["goals"])])


def ramp_lines(setup: str, ramp: dict[str, Any] | None) -> list[str]:
    if not ramp:
        return []
    interval = ramp["steps"][0]["interval_s"] if ramp["steps"] else 0.0
    lines = ["", f"{setup}: agents at a {interval:g} s heartbeat — held {ramp['held_agents']} "
                 f"(stopped by {ramp['stopped_by']})",
             ROW.format("  agents: heartbeat p99 / claim p99 (ms)", "", "", "lag p99")]
    for step in ramp["steps"]:
        mark = "held" if step["held"] else "not held"
        lines.append(ROW.format(f"  {step['agents']} ({mark})", step["heartbeat"]["p99_ms"],
                                step["claim"]["p99_ms"], step["schedule_lag"]["p99_ms"]))
        if set(step["statuses"]) != {"200"}:
            lines.append(f"    answers by status: {step['statuses']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    cli = harness.parser(__doc__, SCENARIOS, "small counts (about 2 minutes)")
    args = cli.parse_args(argv)
    profile = QUICK if args.quick else FULL
    return harness.execute(lambda log: run(profile, scenarios=args.only or SCENARIOS, log=log),
                           render, args.out, with_json=True)


if __name__ == "__main__":
    sys.exit(main())
