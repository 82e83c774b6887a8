"""The agent's HTTP endpoints on 9091: /health /ready /metrics /wrapper/metrics /violations."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ffrtmp.agent.metrics import WorkerMetrics
from ffrtmp.agent.probes import Readiness
from ffrtmp.wrapper import counters

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class AgentApp:
    def __init__(self, readiness: Readiness, metrics: WorkerMetrics, state_dir: str) -> None:
        self.readiness, self.metrics, self.state_dir = readiness, metrics, Path(state_dir)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._json(start_response, 405, {"error": {"code": "method_not_allowed",
                                                              "message": "use GET", "details": None}})
        if path == "/health":
            return self._json(start_response, 200, {"status": "healthy"})
        if path == "/ready":
            ready, body = self.readiness.snapshot()
            return self._json(start_response, 200 if ready else 503, body)
        if path == "/metrics":
            return self._text(start_response, generate_latest(self.metrics.registry))
        if path == "/wrapper/metrics":
            return self._text(start_response, counters.prometheus_text(self.state_dir).encode())
        if path == "/violations":
            return self._json(start_response, 200, counters.read_violations(self.state_dir))
        return self._json(start_response, 404, {"error": {"code": "not_found",
                                                          "message": f"no route {path}", "details": None}})

    @staticmethod
    def _json(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
        data = json.dumps(body).encode()
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
        start_response(f"{status} {reason[status]}", [("Content-Type", "application/json"),
                                                      ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def _text(start_response: StartResponse, data: bytes) -> list[bytes]:
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(data)))])
        return [data]


def start_server(bind: tuple[str, int], app: AgentApp) -> tuple[WSGIServer, threading.Thread]:
    """Serve in a daemon thread; the caller reads the bound port and later shuts it down."""
    server = make_server(bind[0], bind[1], app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="ffrtmp-agent-http", daemon=True)
    thread.start()
    return server, thread
