"""systemd's watchdog sees the agent's loop: fed while it waits out a silent master, not when stuck.

The master sits behind a TCP proxy in the test that either forwards, black-holes (accepts,
reads, never answers) or trickles an answer one byte at a time, so one request never ends.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MasterProcess, agent_env, start_agent, stop_process
from tests.helpers import wait_until

WATCHDOG_S = 10.0  # WatchdogSec of the test's unit: WATCHDOG=1 must come every 5 s at most


class Proxy:
    """Forwards to the master until told to black-hole or trickle; every connection follows.

    A request forwarded before the switch still gets its answer, so the request that never
    ends is always one sent after the switch (the tests' deadlines count from the switch).
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.mode = "forward"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.forwards = 0  # request writes sent upstream so far
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            upstream = socket.create_connection(self.target)
            self.held.append(upstream)
            forwarded = threading.Event()  # set while this connection's last request went upstream
            threading.Thread(target=self._back, args=(upstream, client, forwarded), daemon=True).start()
            while data := client.recv(65536):
                if self.mode == "forward":
                    forwarded.set()
                    upstream.sendall(data)
                    self.forwards += 1
                    continue
                forwarded.clear()
                if self.mode == "trickle":
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                        client.sendall(bytes([byte]))
                        time.sleep(2)
                # black-holed: read and dropped, never answered

    def _back(self, upstream: socket.socket, client: socket.socket,
              forwarded: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if forwarded.is_set():
                    client.sendall(data)

    def close(self) -> None:
        for sock in [self.listener, *self.held]:
            with contextlib.suppress(OSError):
                sock.close()


class Notify:
    """A notify socket that timestamps every WATCHDOG=1 the agent sends."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.feeds: list[float] = []
        self.ready = threading.Event()
        self.open = True
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while self.open:
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            if message == "WATCHDOG=1":
                self.feeds.append(time.monotonic())
            elif message.startswith("READY=1"):
                self.ready.set()

    def longest_gap(self, since: float, until: float) -> float:
        marks = [since, *(t for t in self.feeds if since < t < until), until]
        return max(b - a for a, b in itertools.pairwise(marks))

    def close(self) -> None:
        self.open = False
        self.sock.close()


@pytest.fixture
def proxied(master_proc: MasterProcess, tmp_path: Path) -> Iterator[tuple[Proxy, Notify, Path]]:
    proxy = Proxy(master_proc.env["FFRTMP_MASTER_BIND"])
    notify = Notify(tmp_path / "notify.sock")
    yield proxy, notify, tmp_path
    proxy.close()
    notify.close()


def start(master: MasterProcess, proxy: Proxy, tmp_path: Path) -> object:
    env = {**agent_env(tmp_path, master, FFRTMP_MASTER_URL=proxy.url),
           "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000))}
    return start_agent(tmp_path, master, env=env, wait_ready=False)


@pytest.mark.slow
def test_watchdog_keeps_coming_while_the_master_is_black_holed(
        master_proc: MasterProcess, proxied: tuple[Proxy, Notify, Path]) -> None:
    proxy, notify, tmp_path = proxied
    agent = start(master_proc, proxy, tmp_path)
    try:
        assert notify.ready.wait(60), agent.output()
        proxy.mode = "blackhole"
        since = time.monotonic()
        time.sleep(50)  # a window longer than one heartbeat with its retries (about 47 s)
        until = time.monotonic()
        assert agent.proc.poll() is None
        assert "heartbeat failed (ReadTimeout)" in agent.output() or "retry 3/3" in agent.output()
        gap = notify.longest_gap(since, until)
        assert gap <= WATCHDOG_S / 2, f"no WATCHDOG=1 for {gap:.1f}s while the master was silent"
    finally:
        stop_process(agent.proc)
        print(f"--- agent ---\n{agent.output()}")


@pytest.mark.slow
def test_watchdog_stops_when_the_loop_is_stuck(master_proc: MasterProcess,
                                              proxied: tuple[Proxy, Notify, Path]) -> None:
    proxy, notify, tmp_path = proxied
    agent = start(master_proc, proxy, tmp_path)
    try:
        assert notify.ready.wait(60), agent.output()
        sent = proxy.forwards
        # switch while a request is on its way: it is answered, and the next one never ends
        wait_until(lambda: proxy.forwards > sent, 30, "a request to the master")
        proxy.mode = "trickle"  # each byte comes before the read timeout: one request never ends
        stuck = time.monotonic()
        # the request began at most one claim timeout (10 s + a 1 s long-poll) before, and it
        # promised an answer within twice that; WATCHDOG=1 stops half a WatchdogSec after that
        deadline = stuck + 2 * 11 + WATCHDOG_S / 2 + 5
        while time.monotonic() < deadline + WATCHDOG_S:
            time.sleep(0.5)
        assert agent.proc.poll() is None
        quiet_from = max([stuck, *notify.feeds])
        assert quiet_from <= deadline, f"WATCHDOG=1 still sent {quiet_from - stuck:.0f}s into the stall"
        assert not [t for t in notify.feeds if t > deadline]
    finally:
        proxy.close()  # ends the trickled request: SIGTERM would otherwise wait out stop_process's 40 s
        stop_process(agent.proc)
        print(f"--- agent ---\n{agent.output()}")
