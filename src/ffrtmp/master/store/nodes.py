"""The node registry: enrollment by name, facts a node reports, drain and removal."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from ffrtmp.contract import NodeStatus
from ffrtmp.isotime import iso_from_ts
from ffrtmp.logs import fields
from ffrtmp.master.store.errors import RecordNotFound, StateConflict
from ffrtmp.master.store.ids import ID_PREFIXES, new_id, token_hash
from ffrtmp.master.store.records import BUSY_STATES, node_row, running_count
from ffrtmp.master.store.rows import Conn, Row, node_dict
from ffrtmp.master.store.transactions import SqlCore, after_commit, log

Facts = tuple[Any, ...]  # the node columns an agent reports, in the order ``_write_facts`` sets them


def _facts(name: str, slots: int, encoders: Sequence[str], hwaccels: Sequence[str],
           labels: dict[str, str], ffmpeg_version: str, agent_version: str) -> Facts:
    return (name, slots, json.dumps(sorted(set(encoders))), json.dumps(sorted(set(hwaccels))),
            json.dumps(labels), ffmpeg_version, agent_version)


def _write_facts(conn: Conn, node_id: str, facts: Facts, now: float,
                 credential: str | None = None) -> None:
    conn.execute(
        "UPDATE nodes SET name = ?, slots = ?, encoders = ?, hwaccels = ?, labels = ?,"
        " ffmpeg_version = ?, agent_version = ?, status = ?, last_heartbeat = ?,"
        " maintenance_since = NULL, credential_hash = COALESCE(?, credential_hash) WHERE id = ?",
        (*facts, NodeStatus.ONLINE.value, now, token_hash(credential) if credential else None,
         node_id))


def _name_in_use(name: str, row: Row, now: float, hint: str) -> StateConflict:
    return StateConflict("node_name_in_use",
                         f"node name {name!r} belongs to node {row['id']}, last heard from "
                         f"{max(0.0, now - row['last_heartbeat']):.0f}s ago: give this agent its own "
                         f"FFRTMP_NODE_NAME, or remove that node (ffrtmp nodes remove {row['id']})"
                         f"{hint}", details={"node_id": row["id"], "name": name})


class NodesMixin(SqlCore):
    def register_node(self, *, name: str, slots: int, encoders: Sequence[str],
                      hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                      agent_version: str, live_s: float, heard_since: float = 0.0,
                      now: float | None = None) -> tuple[dict[str, Any], str, bool]:
        """Enroll by name (see ``_enroll``); return (node, credential, created)."""
        now = time.time() if now is None else now
        facts = _facts(name, slots, encoders, hwaccels, labels, ffmpeg_version, agent_version)
        with self._tx() as conn:
            node_id, credential, how = self._enroll(conn, facts, live_s, heard_since, now)
            _write_facts(conn, node_id, facts, now, credential)
            after_commit(logging.WARNING if how.startswith("took over") else logging.INFO,
                         "node %s registered as %s (%s)", name, node_id, how, extra=fields(node=node_id))
        return self.get_node(node_id), credential, how == "new"

    def refresh_node(self, node_id: str, *, name: str, slots: int, encoders: Sequence[str],
                     hwaccels: Sequence[str], labels: dict[str, str], ffmpeg_version: str,
                     agent_version: str, now: float | None = None) -> dict[str, Any]:
        """A node's own start: its facts replace those it had; its id and credential stay."""
        now = time.time() if now is None else now
        facts = _facts(name, slots, encoders, hwaccels, labels, ffmpeg_version, agent_version)
        with self._tx() as conn:
            node_row(conn, node_id, lock=self.FOR_UPDATE)
            self._refuse_taken_name(conn, name, node_id, now)
            _write_facts(conn, node_id, facts, now)
            after_commit(logging.INFO, "node %s (%s) started: facts refreshed, %d slots", name, node_id,
                         slots, extra=fields(node=node_id))
        return self.get_node(node_id)

    def _enroll(self, conn: Conn, facts: Facts, live_s: float, heard_since: float,
                now: float) -> tuple[str, str, str]:
        """A registration by name: (node id, new credential, how).

        A free name makes a new node. The name of a node heard from within ``live_s`` is
        refused, so nobody holding only the enrollment token takes over a live node. A silent
        node's name is taken over (a re-imaged host): same id, and its old credential revoked.
        Silence counts only since ``heard_since``, when this master could first hear heartbeats:
        after an outage, a node that could not reach the master is not silent.
        """
        name, credential = facts[0], secrets.token_urlsafe(32)
        row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ?" + self.FOR_UPDATE,
                           (name,)).fetchone()
        if row is None:
            node_id = new_id(ID_PREFIXES["node"])
            inserted = conn.execute(
                "INSERT INTO nodes (id, name, slots, encoders, hwaccels, labels, ffmpeg_version,"
                " agent_version, credential_hash, registered_at, last_heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (node_id, *facts, token_hash(credential), now, now))
            if inserted.rowcount == 1:
                return node_id, credential, "new"
            row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ?",
                               (name,)).fetchone()  # registered a moment ago by a concurrent call
            assert row is not None  # noqa: S101 -- the insert conflicted on this very name
        silent_s = now - max(row["last_heartbeat"], heard_since)
        if silent_s <= live_s:
            raise _name_in_use(name, row, now, f"; if this host replaces it, stop that agent "
                               f"and register again after {live_s:.0f}s of silence")
        return row["id"], credential, (f"took over the name of a node silent for {silent_s:.0f}s;"
                                       " its old credential is revoked")

    @staticmethod
    def _refuse_taken_name(conn: Conn, name: str, node_id: str, now: float) -> None:
        """A node may rename itself, but never onto another node's name."""
        row = conn.execute("SELECT id, last_heartbeat FROM nodes WHERE name = ? AND id <> ?",
                           (name, node_id)).fetchone()
        if row is not None:
            raise _name_in_use(name, row, now, "")

    def node_for_credential(self, credential: str) -> str | None:
        row = self._read().execute("SELECT id FROM nodes WHERE credential_hash = ?",
                                   (token_hash(credential),)).fetchone()
        return str(row["id"]) if row else None

    def get_node(self, node_id: str) -> dict[str, Any]:
        conn = self._read()
        return node_dict(node_row(conn, node_id), running_count(conn, node_id))

    def resolve_node(self, ref: str) -> str:
        """The id of the node ``ref`` names: its id, its name, or a prefix of one id only.

        An exact id or name wins over prefixes; a prefix of several ids is refused with the
        candidates (``ambiguous_node``), so an operator never acts on a node by chance.
        """
        conn = self._read()
        row = conn.execute("SELECT id FROM nodes WHERE id = ? OR name = ? ORDER BY id = ? DESC",
                           (ref, ref, ref)).fetchone()
        if row is not None:
            return str(row["id"])
        rows = conn.execute("SELECT id, name FROM nodes WHERE substr(id, 1, ?) = ? ORDER BY id"
                            " LIMIT 21", (len(ref), ref)).fetchall()
        if len(rows) == 1:
            return str(rows[0]["id"])
        if not rows:
            raise RecordNotFound("node_not_found", f"no node {ref}")
        candidates = [{"id": r["id"], "name": r["name"]} for r in rows[:20]]
        raise StateConflict("ambiguous_node", f"{ref!r} is the prefix of {len(rows)}"
                            f"{'+' if len(rows) > 20 else ''} node ids: give more of the id, or the name",
                            details={"candidates": candidates})

    def node_detail(self, node_id: str, *, violations: int = 10) -> dict[str, Any]:
        """The node with its running jobs and its latest platform SLA violations (the results
        its attempts reported with ``platform_sla`` false), newest first."""
        conn = self._read()
        node = node_dict(node_row(conn, node_id), running_count(conn, node_id))
        node["running_jobs"] = [
            {"id": r["id"], "state": r["state"], "attempt": r["attempt"],
             "started_at": iso_from_ts(r["started_at"]), "progress": json.loads(r["progress"] or "null")}
            for r in conn.execute(
                "SELECT j.id, j.state, j.attempt, j.progress, a.started_at FROM jobs j"
                " LEFT JOIN attempts a ON a.job_id = j.id AND a.attempt = j.attempt"
                f" WHERE j.node_id = ? AND j.state IN {BUSY_STATES} ORDER BY j.seq", (node_id,))]
        node["violations"] = []
        for r in conn.execute("SELECT job_id, attempt, ended_at, result FROM attempts"
                              " WHERE node_id = ? AND result LIKE ? ORDER BY ended_at DESC LIMIT ?",
                              (node_id, '%"platform_sla": false%', violations)):
            result = json.loads(r["result"])
            node["violations"].append({"job_id": r["job_id"], "attempt": r["attempt"],
                                       "at": iso_from_ts(r["ended_at"]),
                                       "reason": result.get("reason", ""),
                                       "exit_code": result.get("exit_code")})
        return node

    def enter_maintenance(self, node_id: str, *, now: float | None = None) -> dict[str, Any]:
        """A drained node's agent is stopping on purpose: the node is in ``maintenance`` until its
        next heartbeat. ``mark_offline`` passes it over, so its running jobs (which keep running
        under systemd's KillMode=process) are never made lost; the agent re-adopts them."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            node = node_row(conn, node_id, lock=self.FOR_UPDATE)
            if not node["draining"]:
                raise StateConflict("node_not_draining", f"node {node_id} is not drained: only a "
                                    "drained node goes into maintenance (ffrtmp nodes drain)")
            conn.execute("UPDATE nodes SET status = ?, maintenance_since = ? WHERE id = ?",
                         (NodeStatus.MAINTENANCE.value, now, node_id))
            after_commit(logging.INFO, "node %s (%s) stopped for maintenance with %d running job(s):"
                         " they are not made lost while it is away", node["name"], node_id,
                         running_count(conn, node_id), extra=fields(node=node_id))
        return self.get_node(node_id)

    def list_nodes(self) -> list[dict[str, Any]]:
        conn = self._read()
        counts = {row[0]: row[1] for row in conn.execute(
            f"SELECT node_id, COUNT(*) FROM jobs WHERE state IN {BUSY_STATES} GROUP BY node_id").fetchall()}
        return [node_dict(r, counts.get(r["id"], 0))
                for r in conn.execute("SELECT * FROM nodes ORDER BY name")]

    def set_draining(self, node_id: str, draining: bool) -> dict[str, Any]:
        """Drain or undrain. Undraining a node in maintenance also ends its maintenance: it is
        a silent node again, so offline detection makes its running jobs lost if its agent does
        not heartbeat within the node timeout (the operator's lever for a host that will not
        come back; an agent that does come back reports its results as for any lost job)."""
        with self._tx() as conn:
            node_row(conn, node_id, lock=self.FOR_UPDATE)
            conn.execute("UPDATE nodes SET draining = ? WHERE id = ?", (int(draining), node_id))
            ended = 0 if draining else conn.execute(
                "UPDATE nodes SET status = ?, maintenance_since = NULL WHERE id = ? AND status = ?",
                (NodeStatus.ONLINE.value, node_id, NodeStatus.MAINTENANCE.value)).rowcount
        log.info("node %s %s%s", node_id, "draining" if draining else "undrained",
                 "; its maintenance ended: silent, it goes offline after the node timeout"
                 if ended else "", extra=fields(node=node_id))
        return self.get_node(node_id)

    def remove_node(self, node_id: str) -> None:
        with self._tx() as conn:
            node_row(conn, node_id)
            running = running_count(conn, node_id)
            if running:
                raise StateConflict("node_busy", f"node {node_id} has {running} running job(s); "
                                    "drain it and wait, or cancel them first")
            conn.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
        log.info("node %s removed", node_id, extra=fields(node=node_id))
