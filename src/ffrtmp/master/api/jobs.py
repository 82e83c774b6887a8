"""Operator routes for jobs: submit, list, show, cancel, retry, logs.

Every job leaves through ``operator_job`` and every log through ``operator_log``: URLs shown
without password or query string (a presigned signature); the store and the claim keep them exact.
A split job is submitted here like any job; its parts are the master's, never an operator's:
a submitted ``step`` is refused, and the parts are listed with ``?parent=`` or ``?children=1``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ffrtmp import jobspec
from ffrtmp.contract import JobState, Queue
from ffrtmp.jobspec import split
from ffrtmp.jobview import operator_job, operator_log
from ffrtmp.master.api.batches import item_body, items_field, per_item
from ffrtmp.master.api.nodes import node_filter
from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current
from ffrtmp.master.errors import ApiError, Invalid
from ffrtmp.master.store.errors import StoreError
from ffrtmp.master.store.protocol import Submission
from ffrtmp.master.validate import fields_of, json_body, query_int, query_text
from ffrtmp.validation import JOB_ID, FieldError

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")

SUBMITS = {"jobs": items_field()}
_LIST_PARAMS = {"state", "queue", "node", "limit", "cursor", "parent", "children"}


@bp.post("")
@operator_required
def submit() -> Response:
    ext = current()
    job = ext.store.submit_job(**vars(_submission(json_body())))
    ext.queue_watch.poke()
    response = jsonify({"job": operator_job(job)})
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/jobs/{job['id']}"
    return response


@bp.post("/batch")
@operator_required
def submit_many() -> Response:
    """Several submits, one commit; each item answered as ``POST /jobs`` would (201 or its
    error), in its place. A busy store refuses the whole batch (503): nothing was queued."""
    items = fields_of(json_body(), SUBMITS)["jobs"]
    ext = current()

    def run(todo: list[Submission]) -> list[dict[str, Any] | StoreError]:
        return [{"job": operator_job(done)} if isinstance(done, dict) else done
                for done in ext.store.submit_jobs(todo)]

    entries = per_item(items, lambda item: _submission(item_body(item)), run, ok=201)
    ext.queue_watch.poke()
    return jsonify({"jobs": entries})


def _submission(body: dict[str, Any]) -> Submission:
    """A submitted spec, checked as the store will queue it (422 names the bad field)."""
    try:
        spec = jobspec.parse(body, current().settings.media_roots, submitted=True)
    except jobspec.SpecError as exc:
        raise Invalid(exc.field, exc.message) from None
    base = None if spec.split_s is None else split.workspace_base(spec)
    return Submission(spec.to_dict(), queue=spec.queue, priority=spec.priority,
                      capabilities=spec.capabilities(), intent=spec.intent, split_base=base)


@bp.get("")
@operator_required
def list_jobs() -> Response:
    unknown = sorted(set(request.args) - _LIST_PARAMS)
    if unknown:
        raise Invalid(unknown[0], "unknown query parameter")
    states = [s for s in request.args.get("state", "").split(",") if s]
    for state in states:
        if state not in set(JobState):
            raise Invalid("state", f"must be one of {', '.join(JobState)}")
    queue = request.args.get("queue")
    if queue is not None and queue not in set(Queue):
        raise Invalid("queue", f"must be one of {', '.join(Queue)}")
    limit = query_int("limit", 100, 1, 500)
    cursor = query_int("cursor", None, 1, 2**62)
    jobs, next_cursor = current().store.list_jobs(states=states, queue=queue,
                                               node_id=node_filter(query_text("node")),
                                               limit=limit, before=cursor,
                                               parent_id=_parent_param(),
                                               children=query_int("children", 0, 0, 1) == 1)
    return jsonify({"jobs": [operator_job(j) for j in jobs], "next_cursor": next_cursor})


@bp.get("/<job:job_id>")
@operator_required
def show(job_id: str) -> Response:
    return jsonify({"job": operator_job(current().store.get_job(job_id))})


@bp.post("/<job:job_id>/cancel")
@operator_required
def cancel(job_id: str) -> Response:
    _empty_body()
    return jsonify({"job": operator_job(current().store.cancel_job(job_id))})


@bp.post("/<job:job_id>/retry")
@operator_required
def retry(job_id: str) -> Response:
    _empty_body()
    ext = current()
    job = ext.store.retry_job(job_id)
    ext.queue_watch.poke()
    return jsonify({"job": operator_job(job)})


@bp.get("/<job:job_id>/logs")
@operator_required
def logs(job_id: str) -> Response:
    log = current().store.job_log(job_id)
    return jsonify({**log, "log": operator_log(log["log"])})


def _parent_param() -> str | None:
    """``?parent=<job id>``: list that split job's parts, oldest first."""
    parent = query_text("parent")
    if parent is None:
        return None
    try:
        return JOB_ID(parent, "parent")
    except FieldError as exc:
        raise Invalid(exc.field, exc.message) from None


def _empty_body() -> None:
    body = json_body(allow_empty=True)
    if body:
        raise ApiError("invalid", f"{sorted(body)[0]}: unknown field", {"field": sorted(body)[0]},
                       status=422)
