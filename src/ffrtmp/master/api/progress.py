"""The agent's progress report: a running job's figures between heartbeats, about once a second.

A heartbeat carries progress too, every few seconds; this small report makes ``jobs watch``
and the console move at least once a second. It is informational (``store.progress``): stored
without waiting for the disk, never retried by the agent, and answered with how many of the
listed attempts it stored (an attempt that has ended meanwhile is skipped, not refused).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ffrtmp.master.api.agents import RUNNING
from ffrtmp.master.auth import node_required
from ffrtmp.master.context import current
from ffrtmp.master.validate import fields_of, json_body
from ffrtmp.validation import Field, list_of, obj

bp = Blueprint("progress", __name__, url_prefix="/api/v1")

PROGRESS = {"running": Field(list_of(obj(RUNNING), 256), required=True)}


@bp.post("/nodes/<node:node_id>/progress")
@node_required
def report(node_id: str) -> Response:
    body = fields_of(json_body(), PROGRESS)
    return jsonify({"stored": current().store.report_progress(node_id, body["running"])})
