"""Shutdown: one Event set by signals, LIFO handlers that all run, and sd_notify on real sockets."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ffrtmp.shutdown import Shutdown, sd_notify, watchdog_interval

# --- the handler stack ---


def test_handlers_run_last_registered_first() -> None:
    shutdown, ran = Shutdown(), []
    for name in ("logging", "database", "server"):
        shutdown.register(name, lambda n=name: ran.append(n))
    shutdown.run_handlers()
    assert ran == ["server", "database", "logging"]


def test_a_failing_handler_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    shutdown, ran = Shutdown(), []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("disk gone")

    shutdown.register("first", lambda: ran.append("first"))
    shutdown.register("broken", broken)
    shutdown.register("last", lambda: ran.append("last"))
    with caplog.at_level(logging.INFO, logger="ffrtmp.shutdown"):
        shutdown.run_handlers()  # must not raise
    assert ran == ["last", "broken", "first"]
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert failure.getMessage() == "shutdown handler broken failed" and failure.exc_info
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "shutdown: last", "shutdown: broken", "shutdown: first"]


def test_handlers_run_only_once() -> None:
    shutdown, ran = Shutdown(), []
    shutdown.register("once", lambda: ran.append(1))
    shutdown.run_handlers()
    shutdown.run_handlers()
    assert ran == [1]


# --- the stop flag ---


def test_request_keeps_the_first_reason_and_wakes_waiters() -> None:
    shutdown = Shutdown()
    assert not shutdown.requested and shutdown.wait(0.01) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(shutdown.wait(30)))
    waiter.start()
    started = time.monotonic()
    shutdown.request("SIGTERM")
    shutdown.request("later")
    waiter.join(5)
    assert woke == [True] and time.monotonic() - started < 5
    assert shutdown.requested and shutdown.reason == "SIGTERM"


def test_an_installed_signal_sets_the_event_and_names_the_signal() -> None:
    shutdown = Shutdown()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        shutdown.install((signal.SIGUSR1,))
        os.kill(os.getpid(), signal.SIGUSR1)
        assert shutdown.wait(5) is True
        assert shutdown.reason == "SIGUSR1"
    finally:
        signal.signal(signal.SIGUSR1, previous)


# --- sd_notify ---


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="ffn-") as name:
        yield Path(name)


def listen(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_sd_notify_sends_to_a_socket_path(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    with listen(path) as sock:
        assert sd_notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": path}) is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_sd_notify_sends_to_an_abstract_socket() -> None:
    name = f"ffrtmp-test-{secrets.token_hex(6)}"
    with listen("\0" + name) as sock:
        assert sd_notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"STOPPING=1"


def test_sd_notify_reads_the_process_environment_by_default(short_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(short_dir / "notify")
    with listen(path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"
        monkeypatch.delenv("NOTIFY_SOCKET")
        assert sd_notify("WATCHDOG=1") is False
        sock.settimeout(0)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)


def test_sd_notify_is_a_no_op_without_a_socket() -> None:
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": ""}) is False


def test_sd_notify_never_raises_on_a_dead_or_missing_socket(short_dir: Path) -> None:
    dead = str(short_dir / "dead")
    listen(dead).close()  # the path stays, nobody listens: ECONNREFUSED
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": dead}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(short_dir / "absent")}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "@ffrtmp-nobody-" + secrets.token_hex(6)}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "/" + "x" * 200}) is False  # too long for AF_UNIX


# --- watchdog ---


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "20000000"}, 10.0),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # another process
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": ""}, None),
])
def test_watchdog_interval_is_half_of_watchdog_sec(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "8000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 4.0
