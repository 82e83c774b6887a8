"""Fixtures shared by the integration modules: the CLI's (one real master per module and the
CLI bound to it) and the agents a test starts, killed with their workloads at its end."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AgentProcess, kill_workloads, stop_process
from tests.integration.test_cli import master, ops

__all__ = ["agents", "master", "ops"]


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        stop_process(agent.proc, signal.SIGKILL)
    kill_workloads(tmp_path)
    for agent in started:  # shown by pytest only when the test failed
        print(f"--- agent {agent.env['FFRTMP_NODE_NAME']} ---\n{agent.output()}")
