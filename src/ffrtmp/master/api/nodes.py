"""Operator routes for nodes: list, show, drain, undrain, remove.

A node is named by its id, a unique prefix of its id, or its name (``store.resolve_node``):
an ambiguous prefix is a 409 ``ambiguous_node`` listing the candidates.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from werkzeug.routing import BaseConverter

from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current
from ffrtmp.master.store.errors import RecordNotFound
from ffrtmp.master.store.protocol import Store

bp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes")

# the words of the routes under /api/v1/nodes/: never read as a node's name
ROUTE_WORDS = ("register", "drain", "undrain", "facts", "heartbeat", "claim", "starts", "results",
               "maintenance", "progress")


class NodeRefConverter(BaseConverter):
    """``<noderef:ref>``: a node name's shape (which covers ids and their prefixes), except a
    route word, so ``/nodes/register`` is never read as a node (a node so named: by its id)."""

    regex = rf"(?!(?:{'|'.join(ROUTE_WORDS)})(?![A-Za-z0-9_.:-]))[A-Za-z0-9_.:-]{{1,128}}"


def _store() -> Store:
    return current().store


def _resolved(ref: str) -> str:
    return _store().resolve_node(ref)


def node_filter(ref: str | None) -> str | None:
    """A ``node=`` filter on another list (jobs): a ref as everywhere, resolved to its id; one
    that names no node stays as given, so the list is empty rather than an error."""
    if ref is None:
        return None
    try:
        return _resolved(ref)
    except RecordNotFound:
        return ref


@bp.get("")
@operator_required
def list_nodes() -> Response:
    return jsonify({"nodes": _store().list_nodes()})


@bp.get("/<noderef:ref>")
@operator_required
def show(ref: str) -> Response:
    """The node with its running jobs and its latest platform SLA violations."""
    return jsonify({"node": _store().node_detail(_resolved(ref))})


@bp.post("/<noderef:ref>/drain")
@operator_required
def drain(ref: str) -> Response:
    return jsonify({"node": _store().set_draining(_resolved(ref), True)})


@bp.post("/<noderef:ref>/undrain")
@operator_required
def undrain(ref: str) -> Response:
    return jsonify({"node": _store().set_draining(_resolved(ref), False)})


@bp.delete("/<noderef:ref>")
@operator_required
def remove(ref: str) -> Response:
    node_id = _resolved(ref)
    _store().remove_node(node_id)
    return jsonify({"removed": node_id})
