"""Staging an input is a message, not work: an agent killed while it downloads resumes the
download with a range request after its restart, and launches the encode exactly once.
Also: the agent's media metrics count what it moved (derived numbers, read by nobody but
Prometheus)."""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import stop_process
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import wait_final
from tests.integration.test_media_plane import (
    Farm,
    farm_on,
    landed,
    make_source,
    rung,
    sha256,
)
from tests.webdav import start_webdav

DOWNLOAD_BYTES_PER_S = 1_000_000  # nginx's limit_rate: a 6 MB source takes about 6 s


@pytest.fixture
def slow_reads(tmp_path: Path) -> Iterator[Farm]:
    with farm_on(tmp_path, start_webdav(tmp_path, download_bytes_per_s=DOWNLOAD_BYTES_PER_S)) as slow:
        yield slow


def metric(farm: Farm, name: str, direction: str) -> float:
    text = requests.get(f"{farm.agent.url}/metrics", timeout=10).text
    found = re.search(rf'^{name}{{direction="{direction}"}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name}{{direction={direction}}} not exported"
    return float(found.group(1))


def test_an_agent_killed_mid_download_resumes_it_and_encodes_once(slow_reads: Farm) -> None:
    farm, run = slow_reads, secrets.token_hex(4)
    source = make_source(farm.store.path(f"/in/{run}.mp4"), seconds=3, noisy=True)
    assert source.stat().st_size > 3 * DOWNLOAD_BYTES_PER_S  # long enough to be cut mid-way
    job_id = farm.submit({"input": f"store:///in/{run}.mp4",
                          "outputs": [rung(f"store:///out/{run}/a.mp4", "320x180")]})
    part = farm.scratch(job_id) / "inbox" / f"{run}.mp4.part"
    wait_until(lambda: part.exists() and part.stat().st_size > DOWNLOAD_BYTES_PER_S, 60,
               "the download to be under way")
    stop_process(farm.agent.proc, signal.SIGKILL)
    cut = part.stat().st_size
    assert cut < source.stat().st_size
    farm.restart_agent()
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    assert len(done["attempts"]) == 1 and farm.launches(job_id) == 1
    gets = [line for line in farm.store.requests_log() if line.startswith(f"GET /in/{run}.mp4")]
    assert gets[-1].endswith(" 206"), gets  # the second agent asked for the rest only
    staged = farm.agent.output()
    assert "input staged" in staged
    landed(farm.store, f"/out/{run}/a.mp4")
    assert not farm.scratch(job_id).exists()  # the work dir is cleaned once delivered


def test_the_media_metrics_count_what_moved(tmp_path: Path) -> None:
    store = start_webdav(tmp_path)
    with farm_on(tmp_path, store) as farm:
        run = secrets.token_hex(4)
        source = make_source(store.path(f"/in/{run}.mp4"), seconds=2)
        job_id = farm.submit({"input": f"store:///in/{run}.mp4",
                              "outputs": [rung(f"store:///out/{run}/a.mp4", "320x180")]})
        assert wait_final(farm.master, job_id, timeout=90)["state"] == "succeeded"
        output = landed(store, f"/out/{run}/a.mp4")
        assert metric(farm, "worker_media_bytes_total", "download") == source.stat().st_size
        assert metric(farm, "worker_media_bytes_total", "upload") == output.stat().st_size
        assert metric(farm, "worker_media_transfers_active", "upload") == 0
        assert "worker_media_store_up 1.0" in requests.get(f"{farm.agent.url}/metrics", timeout=10).text
        assert sha256(output)  # readable whole
