"""The agent's HTTP endpoints on 9091: /health /ready /metrics /wrapper/metrics /violations.

Plain HTTP without a secret by default; ``FFRTMP_AGENT_WEB_CONFIG`` (``ffrtmp.agent.web``)
adds TLS and Basic or bearer auth, as node_exporter's web.config does.
"""

from __future__ import annotations

import json
import logging
import ssl
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
from ffrtmp.agent.web import WebConfig, load_web_config
from ffrtmp.wrapper import counters

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _TlsServer(_Server):
    """TLS per connection in the connection's own thread: a slow handshake blocks no other client."""

    tls: ssl.SSLContext
    HANDSHAKE_TIMEOUT_S = 10.0

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.HANDSHAKE_TIMEOUT_S)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # plain HTTP on the TLS port, a scanner, a timeout
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class AgentApp:
    def __init__(self, readiness: Readiness, metrics: WorkerMetrics, state_dir: str) -> None:
        self.readiness, self.metrics, self.state_dir = readiness, metrics, Path(state_dir)
        self.web: WebConfig | None = None  # set by start_server from FFRTMP_AGENT_WEB_CONFIG

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.web is not None and not self.web.allows(path, environ.get("HTTP_AUTHORIZATION", "")):
            return self._json(start_response, 401, {"error": {
                "code": "unauthorized", "message": "this endpoint needs credentials", "details": None}},
                [("WWW-Authenticate", self.web.challenge())])
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
    def _json(start_response: StartResponse, status: int, body: Any,
              headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
        data = json.dumps(body).encode()
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}
        start_response(f"{status} {reason[status]}", [("Content-Type", "application/json"),
                                                      ("Content-Length", str(len(data))), *headers])
        return [data]

    @staticmethod
    def _text(start_response: StartResponse, data: bytes) -> list[bytes]:
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(data)))])
        return [data]


def start_server(bind: tuple[str, int], app: AgentApp,
                 web_config: str | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve in a daemon thread; the caller reads the bound port and later shuts it down.

    ``web_config`` is FFRTMP_AGENT_WEB_CONFIG: a bad file raises ConfigError before the port opens.
    """
    web = load_web_config(web_config)
    app.web = web if web is not None and web.auth else None
    server_class: type[_Server] = _Server
    if web is not None and web.tls is not None:
        server_class = type("_AgentTlsServer", (_TlsServer,), {"tls": web.tls})
    server = make_server(bind[0], bind[1], app, server_class=server_class, handler_class=_QuietHandler)
    if web is not None:
        log.info("agent endpoints: %s (/health and /ready open)", web.describe())
    thread = threading.Thread(target=server.serve_forever, name="ffrtmp-agent-http", daemon=True)
    thread.start()
    return server, thread
