"""Dispatch: a node claims queued jobs it can run, in queue, priority and FIFO order.

A claim costs the same at any queue depth. ``jobs_queued`` (schema 4) indexes only what a
node may claim (queued, not a split job: its children are claimed instead), by capability
set and then in dispatch order. A claim steps through the distinct capability sets by index
seeks, keeps those the node can run, reads the head of each and merges them in dispatch
order: a job the node cannot run never blocks the rest, and is never read one by one.

The pick is a read, outside the write lock; a short write transaction then confirms it with
updates that name the state and attempt they expect, so a job another claimer took meanwhile
is passed over and picked again. A claim that finds nothing to run writes nothing. Where
claimers run concurrently (PostgreSQL), the confirming transaction picks again with
``FOR UPDATE SKIP LOCKED``, so concurrent claims pass each other instead of waiting.

A node's attempts hold its slots until their results land, except those its agent lists in
the claim as ended (``ended``): their workload has exited and only the result is on its way
(the output probe, the delivery), so the slot is free and may be refilled before it lands.
Only the node's own started, current attempts count as ended, and at most ``slots`` of them:
a node holds at most twice its slots of attempts however its agent reports them, and runs
at most its slots of workloads as long as its agent lists only what has ended.

A claim message carries the agent's ``claim_id``, the same on every retry of that message at
any master. Its attempts are stored with it, so a message whose reply was lost (its master
killed after the commit, a connection cut) is answered again rather than claimed again: the
claim's attempts still assigned to the node are returned, each with a new token (tokens are
stored hashed, so the first ones cannot be sent again; they stop working) and a new lease,
and nothing more is claimed. Started, ended, expired or canceled ones are not returned, and
a claim once answered is never answered with other work. Claim ids are the node's own: the
node's row lock orders duplicates arriving together, so one claims and the others replay it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence

from ffrtmp.contract import JobState, NodeStatus, Step
from ffrtmp.logs import fields
from ffrtmp.master.store.ids import token_hash
from ffrtmp.master.store.protocol import Assignment
from ffrtmp.master.store.records import QUEUE_VERSION, node_row, running_count, transition
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.transactions import SqlCore, after_commit

# jobs_queued's own condition, written as literals (fixed names, never client text): only
# then may the planners use the partial index for a query
CLAIMABLE = f"state = '{JobState.QUEUED.value}' AND step <> '{Step.SPLIT.value}'"
# the next capability set with a claimable job after ``?`` ('' sorts before every set)
NEXT_SET = ("SELECT capabilities FROM jobs{hint} WHERE " + CLAIMABLE + " AND capabilities > ?"
            " ORDER BY capabilities LIMIT 1")
# the first ``?`` claimable jobs of one capability set, in dispatch order, with the spec an
# assignment carries (it never changes: the write transaction need not read it again)
HEADS = ("SELECT id, seq, capabilities, attempt, queue_rank, priority_rank, spec FROM jobs{hint}"
         " WHERE " + CLAIMABLE + " AND capabilities = ? ORDER BY queue_rank, priority_rank, seq"
         " LIMIT ?")
_ROUNDS = 4  # picks one claim makes while other claimers keep taking its picks first
# whether the node claimed with this claim id before: one seek of ``attempts_claim``
CLAIMED_WITH = "SELECT 1 FROM attempts WHERE node_id = ? AND claim_id = ? LIMIT 1"


class ClaimsMixin(SqlCore):
    # SQLite, without fresh statistics, would rather read every queued job through an index
    # led by ``state`` and sort them; ``INDEXED BY`` holds it to the seek (PostgreSQL: "")
    CLAIM_INDEX = " INDEXED BY jobs_queued"

    def queue_marker(self) -> tuple[int, int]:
        """Moves whenever a job becomes queued: one counter read for long-polls, at any depth.
        (The queue version, summed over its writers' rows; the second value is always 0.)"""
        row = self._read().execute("SELECT COALESCE(SUM(n), 0) FROM job_counts WHERE key = ?",
                                   (QUEUE_VERSION,)).fetchone()
        return (int(row[0]) if row else 0, 0)

    def claim(self, node_id: str, slots: int, *, lease_s: float,
              ended: Sequence[tuple[str, int]] = (), claim_id: str | None = None,
              now: float | None = None) -> list[Assignment]:
        """Assign up to ``slots`` queued jobs this node can run, in dispatch order; ``ended``:
        the (job id, attempt) whose workload has ended on the node, results not yet delivered.
        A ``claim_id`` the node claimed with before is answered again (see the module)."""
        now = time.time() if now is None else now
        claimed: list[Assignment] = []
        ended = sorted(set(ended))
        for _ in range(_ROUNDS):
            # until this call has claimed, ``claim_id`` may be a claim made before (a resend,
            # a duplicate): asked after the pick, whose slots its attempts may have filled
            replay = claim_id is not None and not claimed
            picked = self._pick_for(node_id, slots - len(claimed), ended)
            if not picked:  # nothing this node can run: answered without the write lock
                if replay and claim_id is not None and _claimed_with(self._read(), node_id, claim_id):
                    return self._replay(node_id, claim_id, now=now, lease=now + lease_s)
                break
            got, lost = self._confirm(node_id, slots - len(claimed), picked, ended, now=now,
                                      lease=now + lease_s, claim_id=claim_id, replay=replay)
            claimed += got
            if not lost or len(claimed) >= slots:
                break
        return claimed

    def _replay(self, node_id: str, claim_id: str, *, now: float,
                lease: float) -> list[Assignment]:
        """The claim ``claim_id`` answered again, under the node's lock as a claim is."""
        with self._tx(durable=False) as conn:
            node_row(conn, node_id, lock=self.FOR_UPDATE)
            _seen(conn, node_id, now)
            return _reissue(conn, node_id, claim_id, now=now, lease=lease)

    def _pick_for(self, node_id: str, slots: int, ended: Sequence[tuple[str, int]]) -> list[Row]:
        """What the node would claim now, read without a lock (an unknown node: 404)."""
        conn = self._read()
        node = node_row(conn, node_id)
        capacity = _capacity(conn, node, slots, ended)
        return self._pick(conn, capacity, _have(node)) if capacity > 0 else []

    def _confirm(self, node_id: str, slots: int, picked: Sequence[Row],
                 ended: Sequence[tuple[str, int]], *, now: float, lease: float,
                 claim_id: str | None = None,
                 replay: bool = False) -> tuple[list[Assignment], bool]:
        """Assign what was picked, unless it changed meanwhile; True as well when a pick was
        lost to another claimer (the caller picks again). With ``replay``, a duplicate of
        ``claim_id`` that claimed first is answered again instead."""
        with self._tx(durable=False) as conn:
            node = node_row(conn, node_id, lock=self.FOR_UPDATE)
            _seen(conn, node_id, now)
            if replay and claim_id is not None and _claimed_with(conn, node_id, claim_id):
                return _reissue(conn, node_id, claim_id, now=now, lease=lease), False
            capacity, have = _capacity(conn, node, slots, ended), _have(node)
            if capacity <= 0:
                return [], False
            if self.SKIP_LOCKED:  # claimers run concurrently: lock the picks, pass over theirs
                picked = self._pick(conn, capacity, have, lock=self.SKIP_LOCKED)
            rows = [r for r in picked if set(json.loads(r["capabilities"])) <= have][:capacity]
            got = [a for a in (_assign(conn, r, node_id, now=now, lease=lease, claim_id=claim_id)
                               for r in rows) if a is not None]
            return got, len(got) < len(rows)

    def _pick(self, conn: Conn, capacity: int, have: set[str], *, lock: str = "") -> list[Row]:
        """The first ``capacity`` claimable jobs whose required capabilities the node has:
        one index seek per distinct capability set, one more per set the node can run."""
        heads: list[Row] = []
        caps = ""
        next_set, first = NEXT_SET.format(hint=self.CLAIM_INDEX), HEADS.format(hint=self.CLAIM_INDEX)
        while (row := conn.execute(next_set, (caps,)).fetchone()) is not None:
            caps = row[0]
            if set(json.loads(caps)) <= have:
                heads += conn.execute(first + lock, (caps, capacity)).fetchall()
        heads.sort(key=lambda r: (r["queue_rank"], r["priority_rank"], r["seq"]))
        return heads[:capacity]


def _capacity(conn: Conn, node: Row, slots: int, ended: Sequence[tuple[str, int]]) -> int:
    """Free slots of the node, up to ``slots``; none while it drains. An attempt holds a slot
    until its result lands, unless it is one of the node's ended ones (at most its slots)."""
    if node["draining"]:
        return 0
    held = running_count(conn, node["id"]) - min(int(node["slots"]), _ended_count(conn, node, ended))
    return min(slots, int(node["slots"]) - held)


def _ended_count(conn: Conn, node: Row, ended: Sequence[tuple[str, int]]) -> int:
    """How many of ``ended`` (distinct) are the node's started, current, unsettled attempts."""
    if not ended:
        return 0
    ids = ", ".join("?" * len(ended))
    rows = conn.execute(f"SELECT id, attempt FROM jobs WHERE node_id = ? AND state = ?"
                        f" AND id IN ({ids})",
                        (node["id"], JobState.RUNNING.value, *(job_id for job_id, _ in ended)))
    current = {(row["id"], int(row["attempt"])) for row in rows.fetchall()}
    return len(current.intersection(ended))


def _seen(conn: Conn, node_id: str, now: float) -> None:
    """A claim is a sign of life, as a heartbeat is."""
    conn.execute("UPDATE nodes SET last_heartbeat = ?, status = ? WHERE id = ?",
                 (now, NodeStatus.ONLINE.value, node_id))


def _claimed_with(conn: Conn, node_id: str, claim_id: str) -> bool:
    """Whether the node has claimed with ``claim_id`` before."""
    return conn.execute(CLAIMED_WITH, (node_id, claim_id)).fetchone() is not None


def _reissue(conn: Conn, node_id: str, claim_id: str, *, now: float,
             lease: float) -> list[Assignment]:
    """The claim's attempts the node has not started that are still their job's current
    assignment, in dispatch order, each with a new token and lease (the old token fenced off)."""
    assigned = JobState.ASSIGNED.value
    rows = conn.execute(
        "SELECT a.job_id, a.attempt, j.spec FROM attempts a"
        " JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt AND j.node_id = a.node_id"
        " WHERE a.node_id = ? AND a.claim_id = ? AND a.state = ? AND j.state = ?"
        " ORDER BY j.queue_rank, j.priority_rank, j.seq",
        (node_id, claim_id, assigned, assigned)).fetchall()
    again = []
    for row in rows:
        token = secrets.token_urlsafe(24)
        conn.execute("UPDATE attempts SET token_hash = ?, lease_expires_at = ?"
                     " WHERE job_id = ? AND attempt = ? AND state = ?",
                     (token_hash(token), lease, row["job_id"], row["attempt"], assigned))
        after_commit(logging.INFO, "job %s: claim %s sent again (its reply was lost):"
                     " the same attempt, a new token", row["job_id"], claim_id,
                     extra=fields(job=row["job_id"], node=node_id, attempt=row["attempt"]))
        again.append(Assignment(row["job_id"], int(row["attempt"]), token, lease,
                                json.loads(row["spec"])))
    return again


def _have(node: Row) -> set[str]:
    return set(json.loads(node["encoders"])) | set(json.loads(node["hwaccels"]))


def _assign(conn: Conn, row: Row, node_id: str, *, now: float, lease: float,
            claim_id: str | None = None) -> Assignment | None:
    """One queued job becomes this node's next attempt, with a fresh token and lease; None
    when it is no longer the queued job that was picked (another claim took it meanwhile)."""
    attempt = row["attempt"] + 1
    taken = conn.execute(
        "UPDATE jobs SET state = ?, node_id = ?, attempt = ?, progress = NULL, updated_at = ?"
        " WHERE id = ? AND state = ? AND attempt = ?",
        (JobState.ASSIGNED.value, node_id, attempt, now, row["id"], JobState.QUEUED.value,
         row["attempt"]))
    if taken.rowcount != 1:
        return None
    token = secrets.token_urlsafe(24)
    conn.execute(
        "INSERT INTO attempts (job_id, attempt, node_id, token_hash, state,"
        " assigned_at, lease_expires_at, claim_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row["id"], attempt, node_id, token_hash(token), JobState.ASSIGNED.value, now, lease,
         claim_id))
    transition(conn, row["id"], now, JobState.QUEUED, JobState.ASSIGNED, attempt, node_id, "claimed")
    return Assignment(row["id"], attempt, token, lease, json.loads(row["spec"]))
