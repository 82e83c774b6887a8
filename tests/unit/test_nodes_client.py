"""The agent's heartbeat carries its readiness; a master from before that field refuses it
(422 ``ready: unknown field``), and the client then sends its heartbeats without it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ffrtmp.agent.client import MasterClient
from ffrtmp.shutdown import Shutdown


class OldMaster:
    """A loopback master that refuses an unknown ``ready`` field as the master's validation does."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        seen = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append(body)
                status, reply = 200, {"cancel": [], "drain": False}
                if "ready" in body:
                    status, reply = 422, {"error": {"code": "invalid", "message": "ready: unknown field",
                                                    "details": {"field": "ready"}}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def old_master() -> Iterator[OldMaster]:
    master = OldMaster()
    yield master
    master.server.shutdown()
    master.server.server_close()


def test_heartbeats_go_without_readiness_to_a_master_that_refuses_it(old_master: OldMaster) -> None:
    client = MasterClient([old_master.url], shutdown=Shutdown())
    client.node_id, client.credential = "n-1", "secret"
    client.readiness = lambda: {"ok": False, "reason": "disk_space low: /w 93.8% used"}
    assert client.heartbeat([], 2) == {"cancel": [], "drain": False}
    assert client.heartbeat([], 2) == {"cancel": [], "drain": False}
    assert [("ready" in body) for body in old_master.bodies] == [True, False, False]
    assert old_master.bodies[0]["ready"] == {"ok": False, "reason": "disk_space low: /w 93.8% used"}
