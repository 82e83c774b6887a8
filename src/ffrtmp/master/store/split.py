"""Split jobs in the store: a parent that is never dispatched, and the children it makes.

A split job settles in the transaction that changed one of its children (``_settle``, run by
``SqlCore._tx`` for every job a transition touched): the next child it needs is inserted and
its state and progress are derived there, so a master that stops between two requests never
leaves a parent behind its children. The rules are ``splitstate``; this is their SQL.

Locks are taken child first, then parent, on every path (a child's change, a cancel, a
retry), so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    FINAL,
    PRIORITY_RANK,
    QUEUE_RANK,
    RETRYABLE,
    SETTLES_LATE,
    UNSTARTED,
    AttemptEnd,
    JobState,
    Step,
)
from ffrtmp.jobspec import split
from ffrtmp.logs import fields
from ffrtmp.master.store import splitstate
from ffrtmp.master.store.errors import StateConflict
from ffrtmp.master.store.ids import ID_PREFIXES, new_id
from ffrtmp.master.store.records import job_row, split_link, transition
from ffrtmp.master.store.rows import Conn, Row
from ffrtmp.master.store.sqltext import in_chunks, in_list
from ffrtmp.master.store.transactions import SqlCore, after_commit, known_links, note_link, touch
from ffrtmp.validation import FieldError

# An attempt a retry fences off: its token then gets 409 (stale).
LIVE_ATTEMPTS = in_list(SETTLES_LATE)
_FINAL = in_list(FINAL)


class SplitMixin(SqlCore):
    # --- rows shared with ordinary jobs -----------------------------------------------------

    def _insert_job(self, conn: Conn, spec: dict[str, Any], capabilities: Sequence[str],
                    now: float, *, queue: str, priority: str, intent: str | None, step: str = "",
                    parent_id: str | None = None, reason: str = "submitted") -> str:
        """One queued job row and its first transition; returns its id."""
        job_id = new_id(ID_PREFIXES["job"])
        conn.execute(
            "INSERT INTO jobs (id, state, spec, queue_rank, priority_rank, capabilities, intent,"
            " parent_id, step, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, JobState.QUEUED.value, json.dumps(spec), QUEUE_RANK[queue],
             PRIORITY_RANK[priority], json.dumps(sorted(capabilities)), intent, parent_id, step,
             now, now))
        transition(conn, job_id, now, None, JobState.QUEUED, 0, None, reason,
                   split=step == Step.SPLIT)
        note_link(job_id, job_id if step == Step.SPLIT else parent_id)
        return job_id

    @staticmethod
    def _cancel_unstarted(conn: Conn, job: Row, now: float, reason: str) -> None:
        """A queued or assigned job ends canceled at once: no attempt of it runs."""
        conn.execute("UPDATE jobs SET state = ?, cancel_requested = 1, updated_at = ?,"
                     " finished_at = ? WHERE id = ?", (JobState.CANCELED.value, now, now, job["id"]))
        conn.execute("UPDATE attempts SET state = ?, ended_at = ? WHERE job_id = ? AND attempt = ?",
                     (JobState.CANCELED.value, now, job["id"], job["attempt"]))
        transition(conn, job["id"], now, job["state"], JobState.CANCELED, job["attempt"],
                   job["node_id"], reason)

    @staticmethod
    def _requeue(conn: Conn, job: Row, now: float, reason: str) -> None:
        """A human's new attempt: the old attempt's token is fenced off (stale → 409)."""
        conn.execute("UPDATE attempts SET state = ? WHERE job_id = ? AND attempt = ?"
                     f" AND state IN {LIVE_ATTEMPTS}",
                     (AttemptEnd.SUPERSEDED.value, job["id"], job["attempt"]))
        conn.execute("UPDATE jobs SET state = ?, node_id = NULL, cancel_requested = 0,"
                     " progress = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                     (JobState.QUEUED.value, now, job["id"]))
        transition(conn, job["id"], now, job["state"], JobState.QUEUED, job["attempt"], None, reason)

    # --- operator actions on a split job ----------------------------------------------------

    def _submit_split(self, conn: Conn, spec: dict[str, Any], capabilities: Sequence[str],
                      base: str, now: float, *, queue: str, priority: str,
                      intent: str | None) -> str:
        """The parent and its plan child, in the caller's transaction."""
        parent_id = self._insert_job(conn, spec, capabilities, now, queue=queue, priority=priority,
                                     intent=intent, step=Step.SPLIT.value)
        self._add_child(conn, parent_id, split.plan_child(spec, parent_id,
                                                          split.workspace(base, parent_id)), now)
        return parent_id

    def _add_child(self, conn: Conn, parent_id: str, child: split.Child, now: float) -> None:
        """A child keeps its parent's queue, priority and intent (its spec carries them)."""
        spec = child.spec
        self._insert_job(conn, spec, child.capabilities, now,
                         queue=spec.get("queue", DEFAULT_QUEUE), intent=spec.get("intent"),
                         priority=spec.get("priority", DEFAULT_PRIORITY), step=child.step.value,
                         parent_id=parent_id, reason=f"submitted: {child.step} of split job {parent_id}")

    def _children(self, conn: Conn, parent_id: str, *, lock: str = "") -> list[Row]:
        return conn.execute("SELECT id, step, state, progress, attempt, cancel_requested, node_id"
                            " FROM jobs WHERE parent_id = ? ORDER BY seq" + lock,
                            (parent_id,)).fetchall()

    def _cancel_split(self, conn: Conn, parent_id: str, now: float) -> None:
        """Every child is canceled: queued and assigned ones at once, running and lost ones by
        their node (``cancel_requested``). The sweep a cancel makes is never canceled by one."""
        children = self._children(conn, parent_id, lock=self.FOR_UPDATE)
        parent = job_row(conn, parent_id, lock=self.FOR_UPDATE)
        if parent["state"] in (JobState.SUCCEEDED, JobState.CANCELED):
            raise StateConflict("job_finished", f"job {parent_id} already {parent['state']}")
        if parent["cancel_requested"]:
            return
        conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                     (now, parent_id))
        for child in children:
            if child["step"] == Step.SWEEP or child["state"] in FINAL:
                continue
            if child["state"] in UNSTARTED:
                self._cancel_unstarted(conn, child, now, f"canceled with split job {parent_id}")
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                             (now, child["id"]))
        after_commit(logging.INFO, "job %s: cancel requested for the split job and its parts",
                     parent_id, extra=fields(job=parent_id))
        touch(parent_id, now)

    def _retire(self, conn: Conn, cutoff: float, now: float) -> None:
        """A split job failed since before ``cutoff``, every part final, is given up as its
        cancel would: the sweep removes the intermediates it kept for a retry (the master holds
        no store credentials), and the parent, canceled, is purged a retention period later."""
        rows = conn.execute(
            "SELECT p.id FROM jobs p WHERE p.parent_id IS NULL AND p.step = ? AND p.state = ?"
            " AND p.cancel_requested = 0 AND p.finished_at < ? AND NOT EXISTS (SELECT 1 FROM"
            f" jobs c WHERE c.parent_id = p.id AND c.state NOT IN {_FINAL})",
            (Step.SPLIT.value, JobState.FAILED.value, cutoff)).fetchall()
        for row in rows:
            after_commit(logging.INFO, "job %s: failed for the whole retention period; its"
                         " intermediates are removed and it is canceled", row["id"],
                         extra=fields(job=row["id"]))
            self._cancel_split(conn, row["id"], now)

    def _retry_split(self, conn: Conn, parent_id: str, now: float) -> None:
        """Re-run only the children that did not succeed and hold no node; the rest stay."""
        children = self._children(conn, parent_id, lock=self.FOR_UPDATE)
        parent = job_row(conn, parent_id, lock=self.FOR_UPDATE)
        if parent["state"] == JobState.CANCELED:
            raise StateConflict("not_retryable", f"job {parent_id} is a canceled split job: its "
                                "intermediates were removed; submit it again")
        if parent["state"] not in RETRYABLE or parent["cancel_requested"]:
            raise StateConflict("not_retryable", f"job {parent_id} is {parent['state']}"
                                f"{' and being canceled' if parent['cancel_requested'] else ''};"
                                " only failed or lost split jobs can be retried")
        for child in children:
            if child["state"] in RETRYABLE:
                self._requeue(conn, child, now, f"retried by operator with split job {parent_id}")
        touch(parent_id, now)

    # --- settling ------------------------------------------------------------------------------

    def _settle(self, conn: Conn, touched: dict[str, float]) -> None:
        """Every split job that ``touched`` holds, or is a parent of, settles once."""
        links = known_links()
        for row in _split_links(conn, sorted(j for j in touched if j not in links)):
            links[row["id"]] = split_link(row)
        parents: dict[str, float] = {}
        for job_id, now in touched.items():
            parent_id = links.get(job_id)  # None: no split job, or the job is gone
            if parent_id is not None:
                parents[parent_id] = max(now, parents.get(parent_id, now))
        for parent_id in sorted(parents):
            self._settle_parent(conn, parent_id, parents[parent_id])

    def _settle_parent(self, conn: Conn, parent_id: str, now: float) -> None:
        """Add the child the split job needs next, or derive its state and progress.

        An added child touches the parent again, so the next round derives with it.
        """
        parent = job_row(conn, parent_id, lock=self.FOR_UPDATE)
        if parent["state"] in (JobState.SUCCEEDED, JobState.CANCELED):
            return  # ended for good: a retry of either is refused
        rows = self._children(conn, parent_id)
        plan = _plan_of(conn, rows)
        parts = _parts(rows, plan)
        needs = splitstate.next_step(parts, bool(parent["cancel_requested"]))
        if needs is not None:
            self._make(conn, parent, rows, plan, needs, now)
            return
        verdict = splitstate.verdict(parts, JobState(parent["state"]),
                                     bool(parent["cancel_requested"]))
        self._write_parent(conn, parent, verdict, splitstate.progress(parts, verdict.state), now)

    def _make(self, conn: Conn, parent: Row, rows: Sequence[Row], plan: split.Plan | None,
              step: Step, now: float) -> None:
        """Insert the parts, the stitch or the sweep (a plan the agents API let through is
        valid; one that is not fails the plan child, so the parent fails naming it)."""
        doc, parent_id = json.loads(parent["spec"]), parent["id"]
        place = _workspace_of(conn, parent_id)
        if step == Step.SWEEP:
            self._add_child(conn, parent_id, split.sweep_child(doc, parent_id, place), now)
            return
        if plan is None:
            plan_row = next(r for r in rows if r["step"] == Step.PLAN)
            conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                         (JobState.FAILED.value, now, plan_row["id"]))
            transition(conn, plan_row["id"], now, JobState.SUCCEEDED, JobState.FAILED,
                       plan_row["attempt"], None, "its plan is not valid")
            return
        made = (split.part_children(doc, parent_id, place, plan) if step == Step.SEGMENT
                else (split.stitch_child(doc, parent_id, place, plan),))
        for child in made:
            self._add_child(conn, parent_id, child, now)

    def _write_parent(self, conn: Conn, parent: Row, verdict: splitstate.Verdict,
                      progress: dict[str, Any], now: float) -> None:
        """Store the derived progress; a changed state also gets its transition row."""
        shown = json.dumps(progress, sort_keys=True)
        state = verdict.state
        if state == parent["state"]:
            if shown != parent["progress"]:
                conn.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                             (shown, now, parent["id"]))
            return
        finished = now if state in FINAL else None
        conn.execute("UPDATE jobs SET state = ?, progress = ?, updated_at = ?, finished_at = ?"
                     " WHERE id = ?", (state.value, shown, now, finished, parent["id"]))
        transition(conn, parent["id"], now, parent["state"], state, 0, None,
                   _reason(conn, verdict), split=True)


def _reason(conn: Conn, verdict: splitstate.Verdict) -> str:
    """Why the split job changed state, naming the child that decided it and its own reason."""
    if verdict.cause is None:
        return verdict.why
    row = conn.execute("SELECT reason FROM transitions WHERE job_id = ? ORDER BY id DESC LIMIT 1",
                       (verdict.cause.id,)).fetchone()
    own = f": {row['reason']}" if row is not None and verdict.state != JobState.SUCCEEDED else ""
    return f"{verdict.cause.label} {verdict.why}{own}"


def _plan_of(conn: Conn, rows: Sequence[Row]) -> split.Plan | None:
    """The plan its succeeded plan child reported, or None (not yet, or not valid)."""
    plan_row = next((r for r in rows if r["step"] == Step.PLAN), None)
    if plan_row is None or plan_row["state"] != JobState.SUCCEEDED:
        return None
    attempt = conn.execute("SELECT result FROM attempts WHERE job_id = ? AND attempt = ?",
                           (plan_row["id"], plan_row["attempt"])).fetchone()
    try:
        return split.Plan.from_dict(json.loads(attempt["result"] if attempt else "{}").get("plan"))
    except (FieldError, TypeError, AttributeError):
        return None


def _workspace_of(conn: Conn, parent_id: str) -> str:
    """The workspace the plan child was given: every later child uses the same place."""
    row = conn.execute("SELECT spec FROM jobs WHERE parent_id = ? AND step = ?",
                       (parent_id, Step.PLAN.value)).fetchone()
    assert row is not None  # noqa: S101 -- a split job is inserted with its plan child
    return str(json.loads(row["spec"])["step"]["workspace"])


def _parts(rows: Sequence[Row], plan: split.Plan | None) -> list[splitstate.Part]:
    """The children as the rules see them; segments are numbered and weighted in the order
    they were inserted, which is the plan's order."""
    parts: list[splitstate.Part] = []
    index = 0
    for row in rows:
        step = Step(row["step"])
        weight, label = 1.0, step.value
        if step == Step.SEGMENT:
            if plan is not None and index < len(plan.segments):
                weight = plan.segments[index].duration_s
            label, index = f"segment {index}", index + 1
        progress = json.loads(row["progress"]) if row["progress"] else None
        parts.append(splitstate.Part(row["id"], step, JobState(row["state"]),
                                     splitstate.part_percent(row["state"], progress),
                                     weight, label))
    return parts


def _split_links(conn: Conn, job_ids: Sequence[str]) -> list[Row]:
    """Each job's ``id, parent_id, step`` (the ones that exist), one statement per chunk."""
    return [row for chunk, ids in in_chunks(job_ids)
            for row in conn.execute(f"SELECT id, parent_id, step FROM jobs WHERE id IN {ids}", chunk)]
