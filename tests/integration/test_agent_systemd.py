"""The agent speaks systemd's notify protocol: READY after registering, WATCHDOG, STOPPING."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from tests.conftest import MasterProcess, agent_env, start_agent, stop_process


def test_ready_watchdog_and_stopping_reach_the_notify_socket(master_proc: MasterProcess,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    env = {**agent_env(tmp_path, master_proc), "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"}
    agent = start_agent(tmp_path, master_proc, env=env, wait_ready=False)
    try:
        messages: list[str] = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        nodes = master_proc.session().get(master_proc.url + "/api/v1/nodes", timeout=10).json()["nodes"]
        assert nodes and nodes[0]["status"] == "online", "READY=1 only after registration"
        assert "registered as" in next(m for m in messages if m.startswith("READY=1"))
        while sum(m == "WATCHDOG=1" for m in messages) < 2:
            messages.append(sock.recv(4096).decode())
        agent.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
        assert agent.proc.wait(20) == 0
    finally:
        stop_process(agent.proc)
        sock.close()


def test_a_wrong_enrollment_token_stops_the_agent_with_status_78(master_proc: MasterProcess,
                                                                 tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-enroll"
    wrong.write_text("not-the-enrollment-token-at-all\n")
    agent = start_agent(tmp_path, master_proc, wait_ready=False,
                        env=agent_env(tmp_path, master_proc, FFRTMP_ENROLL_TOKEN_FILE=str(wrong)))
    assert agent.proc.wait(30) == 78
    assert "FFRTMP_ENROLL_TOKEN_FILE" in agent.output()
