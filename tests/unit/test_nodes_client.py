"""The agent's heartbeat carries its readiness; a master from before that field refuses it
(422 ``ready: unknown field``), and the client then sends its heartbeats without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ffrtmp.agent.client import MasterClient
from ffrtmp.shutdown import Shutdown
from tests.fake_master import fake_master


class OldMaster:
    """A master that refuses an unknown ``ready`` field as the master's validation does."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def answer(self, _path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        if "ready" in body:
            return 422, {"error": {"code": "invalid", "message": "ready: unknown field",
                                   "details": {"field": "ready"}}}
        return 200, {"cancel": [], "drain": False}


@pytest.fixture
def old_master() -> Iterator[tuple[str, OldMaster]]:
    master = OldMaster()
    with fake_master(master.answer) as url:
        yield url, master


def test_heartbeats_go_without_readiness_to_a_master_that_refuses_it(
        old_master: tuple[str, OldMaster]) -> None:
    url, master = old_master
    client = MasterClient([url], shutdown=Shutdown())
    client.node_id, client.credential = "n-1", "secret"
    client.readiness = lambda: {"ok": False, "reason": "disk_space low: /w 93.8% used"}
    assert client.heartbeat([], 2) == {"cancel": [], "drain": False}
    assert client.heartbeat([], 2) == {"cancel": [], "drain": False}
    assert [("ready" in body) for body in master.bodies] == [True, False, False]
    assert master.bodies[0]["ready"] == {"ok": False, "reason": "disk_space low: /w 93.8% used"}
