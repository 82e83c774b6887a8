"""The queue-depth benchmark's in-process side: filling a master's store, and timing claims inside it.

Queued jobs go in through the store's own ``submit_job`` (the rows the API would write, the
counters and the queue version kept by the store), many per commit inside ``batch()`` when
the store has it. A million finished jobs would take hours through the lifecycle, so they
are copies of one job that went through it (submit, claim, start, result): its job and
attempt rows are cloned with fresh ids by ``executemany`` in large transactions, and the
per-state counter the store keeps gets the same increment ``records.count_jobs`` would give.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness import BenchError
from ffrtmp import jobspec
from ffrtmp.master.store.sqlite import SqliteStore

GPU = "h264_nvenc"  # the unrunnable half: no node here has it
ELSEWHERE = "libsvtav1"  # the other half: only a node that is busy elsewhere has it
IDLE_ENCODERS = ["libx264", "aac"]
LEASE_S = 300.0
SUCCEEDED = {"outcome": "succeeded", "exit_code": 0}


class TimedStore(SqliteStore):
    """The SQLite store, timing every write transaction from BEGIN acquired to COMMIT done."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.held: list[float] = []

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        with super()._transaction(durable) as conn:
            entered = time.perf_counter()
            yield conn
        self.held.append(time.perf_counter() - entered)


def spec_of(media: Path, requires: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job as the API stores it: the parsed spec and the keyword arguments of ``submit_job``."""
    body = {"input": "testsrc://?duration=1&size=160x120&rate=10",
            "outputs": [{"url": f"file://{media}/out/depth.mp4", "preset": "h264-480p"}],
            "intent": "bench", "requires": requires}
    spec = jobspec.parse(body, (str(media),), submitted=True)
    return spec.to_dict(), {"queue": spec.queue, "priority": spec.priority,
                            "capabilities": spec.capabilities(), "intent": spec.intent}


def fill_queued(store: SqliteStore, media: Path, depth: int, chunk: int = 2000) -> float:
    """``depth`` queued jobs, half needing the GPU no node has, half an encoder only a busy node
    has (a runnable backlog would be claimed at once and the depth would not hold); seconds taken."""
    started = time.perf_counter()
    kinds = [spec_of(media, [GPU]), spec_of(media, [ELSEWHERE])]
    batch = getattr(store, "batch", None)
    done = 0
    while done < depth:
        count = min(chunk, depth - done)
        with batch() if batch is not None else contextlib.nullcontext():
            for index in range(done, done + count):
                spec, kwargs = kinds[index % 2]
                store.submit_job(spec, **kwargs)
        done += count
    return time.perf_counter() - started


def one_finished(store: SqliteStore, media: Path) -> str:
    """A job taken through the whole lifecycle by a node, as the API would: the template."""
    node = _node(store, "template", IDLE_ENCODERS)
    spec, kwargs = spec_of(media, [])
    job = store.submit_job(spec, **kwargs)
    (assignment,) = [a for a in store.claim(node, 1, lease_s=LEASE_S) if a.job_id == job["id"]]
    store.start(job["id"], node, assignment.attempt_token)
    store.record_result(job["id"], node, assignment.attempt_token, SUCCEEDED)
    return str(job["id"])


def fill_finished(store: SqliteStore, media: Path, count: int, chunk: int = 100_000) -> float:
    """``count`` copies of one finished job (job and attempt rows); seconds taken."""
    started = time.perf_counter()
    template = one_finished(store, media)
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        job_cols, job_row = _row(conn, "jobs", "id", template)
        att_cols, att_row = _row(conn, "attempts", "job_id", template)
        job_cols, job_row = zip(*[(c, v) for c, v in zip(job_cols, job_row, strict=True) if c != "seq"],
                                strict=True)
        jid, aid, ath = job_cols.index("id"), att_cols.index("job_id"), att_cols.index("token_hash")
        insert_job = _insert("jobs", job_cols)
        insert_att = _insert("attempts", att_cols)
        for first in range(0, count, chunk):
            jobs, attempts = [], []
            for n in range(first, min(count, first + chunk)):
                new = f"j-{n + 2**40:012x}"
                jobs.append(_with(job_row, jid, new))
                attempts.append(_with(_with(att_row, aid, new), ath, f"bench-{n:016x}"))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert_job, jobs)
            conn.executemany(insert_att, attempts)
            _count(conn, job_row[job_cols.index("state")], len(jobs))
            conn.execute("COMMIT")
    finally:
        conn.close()
    return time.perf_counter() - started


def _row(conn: sqlite3.Connection, table: str, key: str,
         value: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,))
    row = cursor.fetchone()
    if row is None:
        raise BenchError(f"the template job has no {table} row")
    return tuple(d[0] for d in cursor.description), tuple(row)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _with(row: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    return (*row[:index], value, *row[index + 1:])


def _count(conn: sqlite3.Connection, state: str, n: int) -> None:
    """What ``records.count_jobs`` adds for ``n`` jobs in ``state``, where the schema keeps counters."""
    try:
        from ffrtmp.master.store.records import count_jobs
    except ImportError:  # a schema without counters: counts() reads the jobs table itself
        return
    count_jobs(conn, {state: n})


def claim_transactions(store: TimedStore, media: Path, claims: int) -> dict[str, Any]:
    """Claims at depth, in-process: an idle node claiming one fresh runnable job (a pick among
    skipped sets), a node with the busy half's encoder claiming from its deep set, and the idle
    node claiming when nothing is runnable. Each claimed job is then started and finished."""
    idle = _node(store, "tx-idle", IDLE_ENCODERS)
    deep = _node(store, "tx-deep", [*IDLE_ENCODERS, ELSEWHERE])
    spec, kwargs = spec_of(media, [])
    claim_s: dict[str, list[float]] = {"runnable": [], "deep_set": [], "nothing_runnable": []}
    held: list[float] = []
    for _ in range(claims):
        store.submit_job(spec, **kwargs)
        for kind, node in (("runnable", idle), ("deep_set", deep), ("nothing_runnable", idle)):
            store.held.clear()
            started = time.perf_counter()
            got = store.claim(node, 1, lease_s=LEASE_S)
            claim_s[kind].append(time.perf_counter() - started)
            held.extend(store.held)
            if bool(got) == (kind == "nothing_runnable"):
                raise BenchError(f"claim {kind}: got {len(got)} jobs")
            for a in got:
                store.start(a.job_id, node, a.attempt_token)
                store.record_result(a.job_id, node, a.attempt_token, SUCCEEDED)
    return {"claims": claims, "claim_s": claim_s, "write_tx_s": held}


def _node(store: SqliteStore, name: str, encoders: list[str]) -> str:
    node, _, _ = store.register_node(name=name, slots=1, encoders=encoders, hwaccels=[], labels={},
                                     ffmpeg_version="bench", agent_version="bench", live_s=60.0)
    return str(node["id"])
