"""ffrtmp's side of the dispatch benchmark: simulated agents and submitters against a real master.

The agents' protocol is one pluggable object (``AgentProtocol.cycle``): claim up to ``slots``
jobs, confirm their starts, report their results, which go with the node's next claim as the
agent sends them (or on ``POST /nodes/{id}/results``). It uses the batch routes
(``POST /nodes/{id}/starts`` and ``/results``) when the master offers them and a cycle has
more than one item, as the agent does; it finds out by trying once and falls back to one
request per job on 404 or 405.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from bench.harness import REQUEST_TIMEOUT_S, BenchError, summarize
from bench.master_client import (
    CpuMeter,
    Master,
    Node,
    Workers,
    cpu_per_op,
    expect,
    submit,
    submit_many,
)

OK = {"succeeded": 0}
BATCH_KEYS = {"starts": "starts", "results": "results"}  # route -> the body's list field


class AgentProtocol:
    """How a simulated agent talks to the master; ``cycle`` is the only entry point."""

    def __init__(self, master: Master, *, results_in_claim: bool = True) -> None:
        self.url = master.url
        self.results_in_claim = results_in_claim
        self.pending: dict[str, list[dict[str, Any]]] = {}  # node id -> results for its next claim
        self.batch: dict[str, bool | None] = {"starts": None, "results": None}  # None: not tried yet
        self.timings: dict[str, list[float]] = {"claim": [], "start": [], "result": []}
        self.requests = 0
        self.empty_claims = 0
        self.claimed: list[int] = []  # jobs per non-empty claim
        self._lock = threading.Lock()

    def cycle(self, session: requests.Session, node: Node, slots: int, wait_s: float) -> list[str]:
        """One claim (long-polling up to ``wait_s``), its starts, its results; the job ids whose
        results were acknowledged. With ``results_in_claim`` (as the agent does) a batch's
        results go with the node's next claim, which then does not long-poll."""
        pending = self.pending.pop(node.id, [])
        body: dict[str, Any] = {"slots": slots, "wait_s": wait_s}
        if pending:
            body["results"] = pending
        sent = time.perf_counter()
        reply = session.post(f"{self.url}/api/v1/nodes/{node.id}/claim",
                             json=body, timeout=wait_s + REQUEST_TIMEOUT_S)
        took = time.perf_counter() - sent
        expect(reply, 200)
        if pending:
            check_items(reply, "results", pending)
        assignments: list[dict[str, Any]] = reply.json()["assignments"]
        with self._lock:  # an empty claim waited out its long-poll: not a latency
            self.requests += 1
            self.empty_claims += not assignments
            if assignments or pending:
                self.timings["claim"].append(took)
            if assignments:
                self.claimed.append(len(assignments))
        done = [item["job_id"] for item in pending]
        if not assignments:
            return done
        tokens = [{"job_id": a["job_id"], "attempt_token": a["attempt_token"]} for a in assignments]
        self._send(session, node, "starts", tokens)
        report = [{**t, "outcome": "succeeded", "exit_code": 0} for t in tokens]
        if self.results_in_claim:
            self.pending[node.id] = report
            return done
        self._send(session, node, "results", report)
        return done + [a["job_id"] for a in assignments]

    def used(self) -> str:
        """Which routes the run used, for the report."""
        if self.batch["starts"] and self.results_in_claim:
            return "batch (POST /nodes/{id}/starts; results carried by the next claim)"
        if self.batch["starts"] and self.batch["results"]:
            return "batch (POST /nodes/{id}/starts and /results)"
        if self.batch["starts"] is None:
            return "per job (no cycle had more than one item)"
        return "per job (POST /jobs/{id}/start and /result: the master has no batch routes)"

    def _send(self, session: requests.Session, node: Node, route: str, items: list[dict[str, Any]]) -> None:
        op = route[:-1]  # "starts" -> "start"
        if len(items) > 1 and self.batch[route] is not False:
            reply = self._post(session, f"/api/v1/nodes/{node.id}/{route}", {BATCH_KEYS[route]: items}, op)
            if reply.status_code in (404, 405) and self.batch[route] is None:
                self.batch[route] = False
            else:
                expect(reply, 200)
                self.batch[route] = True
                check_items(reply, route, items)
                return
        for item in items:
            body = {k: v for k, v in item.items() if k != "job_id"}
            expect(self._post(session, f"/api/v1/jobs/{item['job_id']}/{op}", body, op), 200)

    def _post(self, session: requests.Session, path: str, body: dict[str, Any], op: str, *,
              timeout: float = REQUEST_TIMEOUT_S) -> requests.Response:
        sent = time.perf_counter()
        reply = session.post(self.url + path, json=body, timeout=timeout)
        took = time.perf_counter() - sent
        with self._lock:
            self.timings[op].append(took)
            self.requests += 1
        return reply


def check_items(reply: requests.Response, route: str, items: list[dict[str, Any]]) -> None:
    """A batch answers one entry per item, in order, each with its own status; all must be 200."""
    entries = reply.json().get(BATCH_KEYS[route])
    if not isinstance(entries, list) or len(entries) != len(items):
        raise BenchError(f"{route}: expected {len(items)} entries, got {reply.text[:300]}")
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("status") != 200:
            raise BenchError(f"{route}: an item failed: {str(entry)[:300]}")


class DispatchRun:
    """N jobs submitted by submitter threads while agent threads drain them."""

    def __init__(self, master: Master, nodes: list[Node], protocol: AgentProtocol, jobs: int, *,
                 submitters: int, slots: int, wait_s: float, submit_batch: int = 1) -> None:
        self.master, self.nodes, self.protocol, self.jobs = master, nodes, protocol, jobs
        self.submit_batch = submit_batch
        self.submitters, self.slots, self.wait_s = submitters, slots, wait_s
        self.submitted: list[list[str]] = [[] for _ in range(submitters)]
        self.done: list[str] = []
        self.last_ack = 0.0
        self.lock = threading.Lock()
        self.all_done = threading.Event()
        self.go = threading.Barrier(submitters + len(nodes) + 1)

    def submitter(self, index: int) -> None:
        """Its share of the jobs, ``submit_batch`` per request (1: ``POST /jobs`` per job)."""
        session = self.master.session()
        share = self.jobs // self.submitters + (index < self.jobs % self.submitters)
        self.go.wait()
        while share > 0:
            count = min(share, self.submit_batch)
            self.submitted[index].extend(submit_many(session, self.master, count) if count > 1
                                         else [submit(session, self.master)])
            share -= count

    def agent(self, node: Node) -> None:
        session = self.master.session(node.credential)
        self.go.wait()
        while not self.all_done.is_set():
            ids = self.protocol.cycle(session, node, self.slots, self.wait_s)
            acknowledged = time.perf_counter()
            with self.lock:
                self.done.extend(ids)
                if ids:
                    self.last_ack = acknowledged
                if len(self.done) >= self.jobs:
                    self.all_done.set()

    def run(self, timeout_s: float) -> dict[str, Any]:
        """Start everyone at once; wall = first submit sent → last result acknowledged."""
        workers = Workers()
        for index in range(self.submitters):
            workers.spawn(self.submitter, index)
        for node in self.nodes:
            workers.spawn(self.agent, node)
        with CpuMeter(self.master.pid) as cpu:
            self.go.wait()
            started = time.perf_counter()
            finished = self.all_done.wait(timeout_s)
        workers.join(self.wait_s + REQUEST_TIMEOUT_S)
        workers.check()
        if not finished:
            raise BenchError(f"ffrtmp: {len(self.done)} of {self.jobs} jobs done within {timeout_s:g} s")
        submitted = [job for part in self.submitted for job in part]
        if len(self.done) != len(set(self.done)) or set(self.done) != set(submitted):
            raise BenchError(f"ffrtmp: {len(self.done)} results ({len(set(self.done))} distinct) "
                             f"for {len(submitted)} submitted jobs")
        wall = self.last_ack - started
        return {"jobs": self.jobs, "wall_s": round(wall, 3), "jobs_per_s": round(self.jobs / wall, 1),
                "cpu": cpu.result, "per_job": cpu_per_op(cpu.result, self.jobs)}


def register(master: Master, count: int, slots: int, prefix: str) -> list[Node]:
    from bench.master_client import register_nodes

    nodes, _ = register_nodes(master, count, prefix=prefix, slots=slots, threads=count)
    return nodes


def measure_ffrtmp(master: Master, profile: Any, warmup: int) -> dict[str, Any]:
    """Warm the master up with a few jobs (not counted), then the measured run, same agents."""
    nodes = register(master, profile.agents, profile.slots, "dispatch")
    protocol = AgentProtocol(master, results_in_claim=profile.results_in_claim)

    def one_run(jobs: int) -> dict[str, Any]:
        return DispatchRun(master, nodes, protocol, jobs, submitters=profile.submitters,
                           slots=profile.slots, wait_s=profile.claim_wait_s,
                           submit_batch=profile.submit_batch).run(profile.round_timeout_s)

    if warmup:
        one_run(warmup)
    protocol.timings = {op: [] for op in protocol.timings}
    protocol.requests = protocol.empty_claims = 0
    protocol.claimed = []
    result = one_run(profile.jobs)
    claimed = protocol.claimed
    result.update(agent_requests=protocol.requests, routes=protocol.used(),
                  empty_claims=protocol.empty_claims,
                  jobs_per_claim=round(sum(claimed) / len(claimed), 2) if claimed else 0.0,
                  latency={op: summarize(t) for op, t in protocol.timings.items()})
    return result
