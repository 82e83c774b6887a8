"""Agent routes: register, facts, heartbeat, claim (long-poll), start, result, and the batches.

A node's credential lets it act only as itself: ``node_required`` checks the URL's node id,
and the store checks that an attempt token belongs to the calling node. The batch routes
(``starts``, ``results``) take a list and answer each item as its single route would, so an
agent with several assignments or results pays one round trip and one commit for them all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, g, jsonify

from ffrtmp.contract import Outcome, Step
from ffrtmp.jobspec import split
from ffrtmp.master.api.batches import item_body, items_field, per_item
from ffrtmp.master.auth import enrollment_required, node_required
from ffrtmp.master.context import current
from ffrtmp.master.errors import Invalid
from ffrtmp.master.store.errors import RecordNotFound
from ffrtmp.master.validate import fields_of, json_body
from ffrtmp.validation import (
    CAPABILITY,
    JOB_ID,
    NODE_NAME,
    Field,
    FieldError,
    NameRule,
    boolean,
    free_object,
    integer,
    labels,
    list_of,
    name_list,
    number,
    obj,
    one_of,
    text,
)

bp = Blueprint("agents", __name__, url_prefix="/api/v1")

REGISTER = {
    "name": Field(NODE_NAME, required=True),
    "slots": Field(integer(1, 256), required=True),
    "encoders": Field(name_list(CAPABILITY, 1024), default=[]),
    "hwaccels": Field(name_list(CAPABILITY, 64), default=[]),
    "labels": Field(labels, default={}),
    "ffmpeg_version": Field(text(200), default=""),
    "agent_version": Field(text(64), default=""),
}
RUNNING = {
    "job_id": Field(NODE_NAME, required=True),
    "attempt": Field(integer(1, 1_000_000), required=True),
    "progress": Field(free_object(16)),
}
# The agent's own readiness verdict (its /ready): whether it claims work, and why not.
READY = {
    "ok": Field(boolean, required=True),
    "reason": Field(text(200, strict=True)),
}
HEARTBEAT = {
    "running": Field(list_of(obj(RUNNING), 256), default=[]),
    "free_slots": Field(integer(0, 256)),
    "ready": Field(obj(READY)),
}
# An attempt whose workload has ended on the node, its result not yet delivered: its slot is free.
ENDED = {
    "job_id": Field(JOB_ID, required=True),
    "attempt": Field(integer(1, 1_000_000), required=True),
}
# The agent's id for one claim message, the same on each retry of it at any master: a claim
# whose reply was lost is answered again with the attempts it made (``store.claims``).
CLAIM_ID = NameRule(re.compile(r"[A-Za-z0-9_-]{8,64}"),
                    "must be 8-64 characters of letters, digits, _ and -")
CLAIM = {
    "slots": Field(integer(1, 256), required=True),
    "wait_s": Field(number(0, 3600), default=0.0),
    "ended": Field(list_of(obj(ENDED), 256), default=[]),
    "claim_id": Field(CLAIM_ID),
    "results": items_field(required=False),  # delivered first, as ``POST /nodes/{id}/results``
}
# One delivered output, as the agent verified it in the store (ffprobe's figures for media).
SHA256 = NameRule(re.compile(r"[0-9a-f]{64}"), "must be a SHA-256 as 64 lowercase hex digits")
VIDEO_SIZE = NameRule(re.compile(r"[0-9]{1,6}x[0-9]{1,6}"),  # as ffprobe prints it, 0x0 too
                      "must be the video size as WIDTHxHEIGHT, e.g. 1280x720, or null")
# The spec's URL (at most 2048) redacted: a one-letter password or query becomes REDACTED.
DELIVERED_URL_CHARS = 2048 + 16
DELIVERED = {
    "url": Field(text(DELIVERED_URL_CHARS, strict=True), required=True),
    "bytes": Field(integer(0, 1 << 53), required=True),
    "sha256": Field(SHA256, required=True),
    "duration_s": Field(number(0, 10**9)),
    "size": Field(VIDEO_SIZE),
}
MAX_OUTPUTS = 64  # a ladder of HLS renditions, each its own playlist


def _any_object(value: Any, where: str) -> dict[str, Any]:
    """Shape only; what a plan must hold is checked against the job's step (``_check_plan``)."""
    if not isinstance(value, dict):
        raise FieldError(where, "must be an object")
    return value


START = {"attempt_token": Field(text(256), required=True)}
RESULT = {
    "attempt_token": Field(text(256), required=True),
    "outcome": Field(one_of(*Outcome), required=True),
    "exit_code": Field(integer(-1, 255)),
    "signal": Field(text(16)),
    "platform_sla": Field(boolean, default=True),
    "reason": Field(text(200), default=""),
    "runtime_s": Field(number(0, 10**9)),
    "started_at": Field(text(40)),
    "ended_at": Field(text(40)),
    "log_tail": Field(text(65536), default=""),
    "outputs": Field(list_of(obj(DELIVERED), MAX_OUTPUTS), default=[]),
    "plan": Field(_any_object),  # a split job's plan step reports its cuts (split.Plan)
}
# The batch routes: each item is its single route's body with the job id the URL would carry.
START_ITEM = {"job_id": Field(JOB_ID, required=True), **START}
RESULT_ITEM = {**RESULT, "job_id": Field(JOB_ID, required=True)}
STARTS = {"starts": items_field()}
RESULTS = {"results": items_field()}


@bp.post("/nodes/register")
@enrollment_required
def register() -> Response:
    body = fields_of(json_body(), REGISTER)
    ext = current()
    # a name is live while its node heartbeats, counting only silence this master could hear
    node, credential, created = ext.store.register_node(**body, live_s=ext.settings.node_timeout,
                                                        heard_since=ext.duties.listening_since)
    response = jsonify({"node": node, "node_id": node["id"], "credential": credential,
                        **ext.timing()})
    response.status_code = 201 if created else 200
    return response


@bp.put("/nodes/<node:node_id>/facts")
@node_required
def facts(node_id: str) -> Response:
    """Every agent start, with its saved credential: the node's facts are its latest start's."""
    body = fields_of(json_body(), REGISTER)
    node = current().store.refresh_node(node_id, **body)
    return jsonify({"node": node, "node_id": node_id, **current().timing()})


@bp.post("/nodes/<node:node_id>/heartbeat")
@node_required
def heartbeat(node_id: str) -> Response:
    body = fields_of(json_body(allow_empty=True), HEARTBEAT)
    settings = current().settings
    # an attempt left out of the heartbeats for one interval plus the node timeout is lost
    reply = current().store.heartbeat(node_id, body["running"],
                                      unlisted_after_s=settings.heartbeat_interval
                                      + settings.node_timeout, ready=body["ready"])
    return jsonify({**reply, **current().timing()})


@bp.post("/nodes/<node:node_id>/maintenance")
@node_required
def maintenance(node_id: str) -> Response:
    """A drained node's agent, stopping on purpose, says so: the node is ``maintenance`` (not
    offline, its jobs not lost) until it heartbeats again. A node not drained: 409."""
    fields_of(json_body(allow_empty=True), {})
    return jsonify({"node": current().store.enter_maintenance(node_id)})


@bp.post("/nodes/<node:node_id>/claim")
@node_required
def claim(node_id: str) -> Response:
    """Claim up to ``slots`` jobs. Results sent along are recorded first, as the results route
    records them (answered in ``results``), and free their slots: a node whose jobs ended
    refills them in the same round trip. A claim that carries results does not long-poll."""
    body = fields_of(json_body(), CLAIM)
    ext = current()
    delivered = _record_results(node_id, body["results"]) if body["results"] else None
    wait_s = 0.0 if delivered else min(body["wait_s"], ext.settings.claim_wait_max)
    deadline = time.monotonic() + wait_s
    ended = [(item["job_id"], item["attempt"]) for item in body["ended"]]
    if wait_s > 0:
        assignments = ext.claims.wait_and_claim(node_id, body["slots"], deadline, ended,
                                                claim_id=body["claim_id"])
    else:
        assignments = ext.store.claim(node_id, body["slots"], lease_s=ext.settings.lease,
                                      ended=ended, claim_id=body["claim_id"])
    reply: dict[str, Any] = {"assignments": [
        {"job_id": a.job_id, "attempt": a.attempt, "attempt_token": a.attempt_token,
         "lease_s": ext.settings.lease, "spec": a.spec} for a in assignments]}
    if delivered is not None:
        reply["results"] = delivered
    return jsonify(reply)


@bp.post("/jobs/<job:job_id>/start")
@node_required
def start(job_id: str) -> Response:
    body = fields_of(json_body(), START)
    return jsonify(current().store.start(job_id, g.node_id, body["attempt_token"]))


@bp.post("/jobs/<job:job_id>/result")
@node_required
def result(job_id: str) -> Response:
    ext = current()
    report, step = _checked_result(job_id, fields_of(json_body(), RESULT),
                                   ext.store.job_steps([job_id]))
    reply = ext.store.record_result(job_id, g.node_id, report[1], report[2], log_tail=report[3])
    if step is not None:  # a part's result may have queued the next parts of its split job
        ext.queue_watch.poke()
    return jsonify(reply)


@bp.post("/nodes/<node:node_id>/starts")
@node_required
def starts(node_id: str) -> Response:
    """Several starts, one commit; each item answered as ``POST /jobs/{id}/start`` would."""
    items = fields_of(json_body(), STARTS)["starts"]

    def check(item: Any) -> tuple[str, str]:
        body = fields_of(item_body(item), START_ITEM)
        return body["job_id"], body["attempt_token"]

    store = current().store
    entries = per_item(items, check, lambda todo: store.start_many(node_id, todo))
    return jsonify({"starts": entries})


@bp.post("/nodes/<node:node_id>/results")
@node_required
def results(node_id: str) -> Response:
    """Several results, one commit; each item answered as ``POST /jobs/{id}/result`` would."""
    return jsonify({"results": _record_results(node_id, fields_of(json_body(), RESULTS)["results"])})


def _record_results(node_id: str, items: list[Any]) -> list[dict[str, Any]]:
    """The results route's work, for it and for a claim that carries results: each item's
    entry, in order."""
    ext = current()
    known = ext.store.job_steps([i["job_id"] for i in items
                                 if isinstance(i, dict) and isinstance(i.get("job_id"), str)])
    steps: list[str | None] = []

    def check(item: Any) -> tuple[str, str, dict[str, Any], str]:
        body = fields_of(item_body(item), RESULT_ITEM)
        report, step = _checked_result(body.pop("job_id"), body, known)
        steps.append(step)
        return report

    entries = per_item(items, check, lambda todo: ext.store.record_results(node_id, todo))
    if any(step is not None for step in steps):  # as the single route: a split may have moved on
        ext.queue_watch.poke()
    return entries


def _checked_result(job_id: str, body: dict[str, Any], steps: Mapping[str, str | None],
                    ) -> tuple[tuple[str, str, dict[str, Any], str], str | None]:
    """A result body checked (its plan too, ``steps`` being the jobs' steps that
    ``store.job_steps`` found) and split as the store takes it:
    ((job id, token, result, log tail), the job's step)."""
    if job_id not in steps:
        raise RecordNotFound("job_not_found", f"no job {job_id}")
    step = _check_plan(steps[job_id], body)
    token = body.pop("attempt_token")
    log_tail = body.pop("log_tail")
    return (job_id, token, body, log_tail), step


def _check_plan(step: str | None, body: dict[str, Any]) -> str | None:
    """A split job's plan step that succeeded reports a valid plan, and no other job reports
    one: the master makes the parts from it, so a bad one is refused (422) before anything
    changes. A result without a plan is stored as it was before plans existed. Returns the
    job's step (None for an ordinary job)."""
    plan = body.pop("plan")
    if step != Step.PLAN:
        if plan is not None:
            raise Invalid("plan", "only the plan step of a split job reports a plan")
        return step
    if plan is None:
        if body["outcome"] == Outcome.SUCCEEDED:
            raise Invalid("plan", "is required when the plan step of a split job succeeds")
        return step
    try:
        split.Plan.from_dict(plan)
    except FieldError as exc:
        raise Invalid(exc.field, exc.message) from None
    body["plan"] = plan
    return step
