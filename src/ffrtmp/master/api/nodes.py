"""Operator routes for nodes: list, show, drain, undrain, remove.

A node is named by its id, a unique prefix of its id, or its name (``store.resolve_node``):
an ambiguous prefix is a 409 ``ambiguous_node`` listing the candidates.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current
from ffrtmp.master.errors import Invalid
from ffrtmp.master.store.errors import RecordNotFound
from ffrtmp.master.store.protocol import Store
from ffrtmp.validation import NODE_NAME, FieldError

bp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes")


def _store() -> Store:
    return current().store


def _resolved(ref: str) -> str:
    try:
        NODE_NAME(ref, "node")
    except FieldError as exc:
        raise Invalid(exc.field, "must be a node id, a unique id prefix or a node name") from None
    return _store().resolve_node(ref)


def node_filter(ref: str | None) -> str | None:
    """A ``node=`` filter on another list (jobs): a ref as everywhere, resolved to its id; one
    that names no node stays as given, so the list is empty rather than an error."""
    if ref is None:
        return None
    try:
        return _resolved(ref)
    except (Invalid, RecordNotFound):
        return ref


@bp.get("")
@operator_required
def list_nodes() -> Response:
    return jsonify({"nodes": _store().list_nodes()})


@bp.get("/<ref>")
@operator_required
def show(ref: str) -> Response:
    """The node with its running jobs and its latest platform SLA violations."""
    return jsonify({"node": _store().node_detail(_resolved(ref))})


@bp.post("/<ref>/drain")
@operator_required
def drain(ref: str) -> Response:
    return jsonify({"node": _store().set_draining(_resolved(ref), True)})


@bp.post("/<ref>/undrain")
@operator_required
def undrain(ref: str) -> Response:
    return jsonify({"node": _store().set_draining(_resolved(ref), False)})


@bp.delete("/<ref>")
@operator_required
def remove(ref: str) -> Response:
    node_id = _resolved(ref)
    _store().remove_node(node_id)
    return jsonify({"removed": node_id})
