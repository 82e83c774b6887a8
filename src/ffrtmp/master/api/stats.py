"""Operator route for the queue's last hour: its depth and its throughput, per five minutes.

Answered from the store's history of state changes (``store.queuestats``), so every master
gives the same answer; the web console draws its charts from it.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current
from ffrtmp.master.errors import Invalid

bp = Blueprint("stats", __name__, url_prefix="/api/v1/stats")


@bp.get("/queue")
@operator_required
def queue() -> Response:
    """The last hour in twelve buckets: the jobs queued at each bucket's end, and the jobs that
    reached a final state within it. The window is fixed: the route takes no parameter."""
    if request.args:
        raise Invalid(sorted(request.args)[0], "unknown query parameter (the route takes none)")
    return jsonify(current().store.queue_stats())
