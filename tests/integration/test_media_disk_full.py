"""A full media root: the agent stops claiming, and an encode that fills it is the platform's
failure (``disk_full``), not the workload's. A small tmpfs is the media root (needs root), with
a real master, a real agent and a real ffmpeg.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import (
    AgentProcess,
    MasterProcess,
    master_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, submit, wait_final

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")

TMPFS_MB = 8


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(root)],
                   check=True, timeout=30)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False, timeout=30)


@pytest.fixture
def farm(tmp_path: Path, small_root: Path) -> Iterator[tuple[MasterProcess, AgentProcess]]:
    """A master and an agent whose media roots are the usual directory and the small tmpfs."""
    roots = f"{tmp_path / 'media'}:{small_root}"
    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_MEDIA_ROOTS=roots))
    agent = None
    try:
        agent = start_agent(tmp_path, master)
        yield master, agent
    finally:
        if agent is not None:
            stop_process(agent.proc)
        stop_process(master.proc)


def output(path: Path) -> dict[str, str]:
    return {"url": f"file://{path}", "preset": "h264-480p", "size": "320x180",
            "video_bitrate": "20M", "encoder_preset": "ultrafast"}


@pytest.mark.slow
def test_a_full_media_root_makes_the_agent_unready(farm: tuple[MasterProcess, AgentProcess],
                                                   small_root: Path) -> None:
    master, agent = farm
    filler = small_root / "filler"
    filler.write_bytes(b"\0" * int((TMPFS_MB - 0.3) * 2**20))
    filled_at = utc_iso()
    ready = requests.get(agent.url + "/ready", timeout=5)
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["disk_space"].startswith(f"low: {small_root} "), ready.text
    # a loop pass that heartbeats after the fill checks readiness before any claim, and the
    # claim of the pass before it has returned by then: the loop is sequential
    wait_until(lambda: heartbeat_after(master, filled_at), 15, "a heartbeat after the fill")
    job_id = submit(master, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                             "outputs": [output(small_root / "never.mp4")]})
    wait_until(lambda: heartbeat_after(master, job(master, job_id)["created_at"]), 15,
               "a heartbeat while not ready")
    assert job(master, job_id)["state"] == "queued"
    assert "worker_ready 0.0" in requests.get(agent.url + "/metrics", timeout=5).text
    filler.unlink()
    assert wait_final(master, job_id, timeout=60)["state"] == "succeeded"


def utc_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def heartbeat_after(master: MasterProcess, moment: str) -> bool:
    nodes = master.session().get(master.url + "/api/v1/nodes", timeout=10).json()["nodes"]
    return bool(nodes[0]["last_heartbeat"] > moment)


@pytest.mark.slow
def test_an_encode_that_fills_the_media_root_is_a_platform_failure(
        farm: tuple[MasterProcess, AgentProcess], small_root: Path) -> None:
    master, agent = farm
    filler = small_root / "filler"
    filler.write_bytes(b"\0" * int(6.5 * 2**20))  # 81 % used: still ready, 1.5 MB free
    assert requests.get(agent.url + "/ready", timeout=5).status_code == 200
    # this encode is about 5.7 MB
    job_id = submit(master, {"input": "testsrc://?duration=10&size=640x360&rate=25",
                             "outputs": [{**output(small_root / "big.mkv"), "size": "640x360"}]})
    done = wait_final(master, job_id, timeout=120)
    result = done["attempts"][0]["result"]
    assert done["state"] == "failed", result
    assert (result["reason"], result["platform_sla"]) == ("disk_full", False), result
    assert list(small_root.iterdir()) == [filler]  # the partial output is gone, its space back
    assert requests.get(agent.url + "/ready", timeout=5).status_code == 200
