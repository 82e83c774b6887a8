"""Operator route for the masters sharing the database: which are up, which ran each duty.

Answered from the store alone, so every master gives the same answer. A master is ``up``
when it announced itself within ``node_timeout`` (it does so every heartbeat interval).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify

from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current

bp = Blueprint("masters", __name__, url_prefix="/api/v1/masters")


def masters_view(listing: dict[str, Any], node_timeout: float, now: float) -> dict[str, Any]:
    """The store's listing as the API shows it: ``up`` for each master, the duties it last
    ran (``holds``), and the duties by name with their holder."""
    duties: dict[str, dict[str, Any]] = listing["duties"]
    masters = [{"id": m["id"], "up": now - m["last_seen_ts"] <= node_timeout,
                "version": m["version"], "started_at": m["started_at"], "last_seen": m["last_seen"],
                "holds": sorted(name for name, d in duties.items() if d["holder"] == m["id"])}
               for m in listing["masters"]]
    return {"masters": masters, "duties": duties}


@bp.get("")
@operator_required
def list_masters() -> Response:
    ctx = current()
    return jsonify(masters_view(ctx.store.list_masters(), ctx.settings.node_timeout, time.time()))
