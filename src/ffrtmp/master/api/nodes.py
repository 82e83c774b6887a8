"""Operator routes for nodes: list, show, drain, undrain, remove."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ffrtmp.master.auth import operator_required
from ffrtmp.master.context import current
from ffrtmp.master.store.protocol import Store

bp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes")


def _store() -> Store:
    return current().store


@bp.get("")
@operator_required
def list_nodes() -> Response:
    return jsonify({"nodes": _store().list_nodes()})


@bp.get("/<node:node_id>")
@operator_required
def show(node_id: str) -> Response:
    return jsonify({"node": _store().get_node(node_id)})


@bp.post("/<node:node_id>/drain")
@operator_required
def drain(node_id: str) -> Response:
    return jsonify({"node": _store().set_draining(node_id, True)})


@bp.post("/<node:node_id>/undrain")
@operator_required
def undrain(node_id: str) -> Response:
    return jsonify({"node": _store().set_draining(node_id, False)})


@bp.delete("/<node:node_id>")
@operator_required
def remove(node_id: str) -> Response:
    _store().remove_node(node_id)
    return jsonify({"removed": node_id})
