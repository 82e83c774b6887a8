"""The master's gunicorn worker: gthread, made robust against slow and broken clients.

gthread hands a connection to a pool thread as soon as it has sent one byte, and that
thread then blocks in ``recv`` until the request is complete: some 60 clients that send
half a request line and stop hold every thread, and ``/health``, the API and ``/metrics``
stop answering. This worker instead

- reads a request's headers in the event loop, without a thread, and hands the
  connection to a thread only once they are complete; a client gets ``read_timeout``
  seconds for them, then a 408 and the connection is closed;
- sets ``read_timeout`` on every connection's socket, so a client that pauses longer
  while sending a body (or while it should read the answer) loses the connection;
- serves the metrics port from its own small pool, so a saturated API never hides
  ``/metrics``;
- closes a kept-alive connection after ``KEEPALIVE_REQUESTS`` answers, as nginx does. A
  farm's agents hold a few long-lived connections, and the workers race to accept each: one
  worker could hold nearly all of them for good (seen: 95 % of the writes), and the master
  ran on one core. Each reconnection goes to the worker that is free first, so the load
  spreads over the workers within a few seconds;
- writes gunicorn's own error answers (400, 414, 431, …) as the API's JSON envelope.

Over TLS the bytes are encrypted, so the handshake and the headers are read by the
thread: only the socket timeout bounds them there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

from ffrtmp.master import errors

log = logging.getLogger(__name__)

HEADERS_END = (b"\r\n\r\n", b"\n\n")
# headers beyond this are left to the thread (and gunicorn's limits): a parked client holds
# at most this much memory
READ_AHEAD = 64 * 1024
METRICS_THREADS = 4
# answers on one kept-alive connection before it is closed (nginx's keepalive_requests): the
# client connects again, and the worker that is free first accepts it
KEEPALIVE_REQUESTS = 100
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def block_stop_signals_at_fork() -> None:
    """Keep a stop signal sent while a worker forks pending until the worker can handle it.

    Between ``fork`` and its own ``init_signals`` a worker runs the arbiter's handler,
    which only queues the signal in the child's copy of the arbiter: an early SIGTERM was
    lost, and the arbiter waited the whole graceful timeout before killing the worker.
    Called once, in the arbiter.
    """
    os.register_at_fork(before=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS),
                        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS))


class BoundedSocket(socket.socket):
    """A socket whose blocking mode gives up after ``read_timeout`` of silence.

    gunicorn switches a connection to blocking mode before it reads a request and before
    the TLS handshake, which it runs while wrapping the socket (the wrapped socket copies
    this timeout); a plain ``settimeout`` would be undone by that switch.
    """

    read_timeout: float | None = None

    def setblocking(self, flag: bool) -> None:
        if flag and self.read_timeout:
            self.settimeout(self.read_timeout)
        else:
            super().setblocking(flag)


class TimedConn(TConn):
    """A connection whose socket gives up after ``read_timeout`` of silence."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any,
                 read_timeout: float) -> None:
        super().__init__(cfg, sock, client, server)
        self.read_timeout = read_timeout
        self.early = b""  # bytes read by the event loop, before the parser existed
        self.header_deadline: float | None = None
        self.served = 0  # requests answered on this connection

    def init(self) -> None:
        try:
            super().init()  # builds the parser once; gunicorn calls it before every request
        except TimeoutError:  # the TLS handshake: gunicorn closes on StopIteration, quietly
            log.warning("closed a connection from ip=%s: TLS handshake not done within %g s",
                        self.client[0], self.read_timeout)
            raise StopIteration("TLS handshake timed out") from None
        if self.early:
            self.parser.unreader.unread(self.early)
            self.early = b""
        self.sock.settimeout(self.read_timeout)  # the TLS socket is gunicorn's, not bounded


def write_json_error(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """gunicorn's ``util.write_error``, answering with the API's JSON envelope."""
    body = json.dumps(errors.error_body(errors.code_for(reason), message or reason)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class MasterWorker(ThreadWorker):
    """gthread, with the read bounds, metrics pool and JSON errors of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.app.settings
        self.read_timeout: float = settings.read_timeout
        self.metrics_port: int = settings.metrics_bind[1]
        self.metrics_pool: ThreadPoolExecutor | None = None

    def handle_request(self, req: Any, conn: TimedConn) -> bool:
        """gthread's, with ``Connection: close`` on the last answer a connection may have."""
        conn.served += 1
        if conn.served >= KEEPALIVE_REQUESTS:
            req.must_close = True
        return bool(super().handle_request(req, conn))

    def init_process(self) -> None:
        # gunicorn writes every answer it gives without the app (bad request line, header
        # too large, …) through this one function; the worker process is ours alone
        util.write_error = write_json_error
        self.metrics_pool = ThreadPoolExecutor(METRICS_THREADS, thread_name_prefix="metrics")
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # see block_stop_signals_at_fork

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self.metrics_pool is not None:
                self.metrics_pool.shutdown(wait=False)

    def accept(self, listener: socket.socket) -> None:
        try:
            accepted, client = listener.accept()
        except (BlockingIOError, ConnectionAbortedError, InterruptedError):
            return
        self.nr_conns += 1
        sock = BoundedSocket(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        sock.read_timeout = self.read_timeout
        self.enqueue_req(TimedConn(self.cfg, sock, client, listener.getsockname(), self.read_timeout))

    def enqueue_req(self, conn: TimedConn) -> None:
        """Give the connection a thread once its request's headers are all here."""
        if not self._headers_arrived(conn):
            self._park(conn)
            return
        conn.header_deadline = None
        conn.data_ready = True  # gthread would otherwise wait for more bytes in the thread
        metrics = conn.server[1] == self.metrics_port
        pool = self.metrics_pool if metrics and self.metrics_pool is not None else self.tpool
        future = pool.submit(self.handle, conn)
        future.add_done_callback(partial(self._finished, conn))

    def _finished(self, conn: TimedConn, future: Future[Any]) -> None:
        self.method_queue.defer(self.finish_request, conn, future)

    def _headers_arrived(self, conn: TimedConn) -> bool:
        if conn.initialized and conn.parser.unreader.buf.getvalue():
            return True  # a pipelined request gunicorn has already read
        if self.cfg.is_ssl:  # encrypted: any bytes will do, the thread reads the rest
            return conn.initialized or _readable(conn.sock)
        try:
            data = conn.sock.recv(READ_AHEAD, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # the thread meets the broken socket and cleans up
        conn.early += data  # read, not peeked: a parked socket must not stay readable
        return not data or any(end in conn.early for end in HEADERS_END) or len(conn.early) >= READ_AHEAD

    def _park(self, conn: TimedConn) -> None:
        """Wait in the event loop, not in a thread, for the rest of the headers."""
        if conn.header_deadline is None:
            conn.header_deadline = time.monotonic() + self.read_timeout
        conn.timeout = conn.header_deadline
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def murder_pending(self) -> None:
        """Close connections whose headers did not arrive in time (408 if they sent some)."""
        now = time.monotonic()
        for conn in [c for c in self.pending_conns if c.timeout <= now]:
            self.pending_conns.remove(conn)
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            log.warning("closed a connection from ip=%s: request headers not received within %g s",
                        conn.client[0], self.read_timeout)
            if conn.early:
                with contextlib.suppress(OSError):
                    write_json_error(conn.sock, 408, "Request Timeout",
                                     f"the request's headers did not arrive within {self.read_timeout:g} s")
            conn.close()


def _readable(sock: socket.socket) -> bool:
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        pass  # the thread meets the error
    return True
