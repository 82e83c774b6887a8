"""The media plane when things go wrong mid-way: the store goes down, the agent is killed during
an upload, the job is canceled. Uploading is transport: it waits and resumes; the encode never
runs twice, and no partial or temporary object is left in the store.

Real components as in ``test_media_plane.py`` (whose farm and helpers these tests share); the
throttled store is nginx behind a relay that takes uploads at 2 MB/s, so an upload lasts long
enough to be interrupted on purpose.
"""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import stop_process
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import FINAL, probe, wait_final
from tests.integration.test_media_plane import (
    Farm,
    delivered,
    farm_on,
    heartbeat_after,
    landed,
    make_source,
    now,
    rung,
    sha256,
    start_farm,
    stop_farm,
    temporaries,
    uploads_in_flight,
)
from tests.webdav import WebDavStore, start_webdav

THROTTLE_BYTES_PER_S = 2_000_000


@pytest.fixture
def farm(tmp_path: Path, webdav_store: WebDavStore) -> Iterator[Farm]:
    started = start_farm(tmp_path, webdav_store)
    yield started
    stop_farm(started)


@pytest.fixture
def slow_farm(tmp_path: Path) -> Iterator[Farm]:
    """A farm whose store takes uploads at 2 MB/s."""
    with farm_on(tmp_path, start_webdav(tmp_path, throttle_bytes_per_s=THROTTLE_BYTES_PER_S)) as slow:
        yield slow


def big_output_job(farm: Farm, run: str) -> str:
    """A job whose one output (about 15 MB) takes several seconds to upload to the slow store."""
    make_source(farm.store.path(f"/in/{run}.mp4"), seconds=4, noisy=True)
    return farm.submit({"input": f"store:///in/{run}.mp4",
                        "outputs": [rung(f"store:///out/{run}/big.mp4", "640x360", video_bitrate="30M")]})


def await_upload(farm: Farm, job_id: str) -> None:
    """Wait until the encode is over and nginx is receiving the output's body; fail at once if the
    job ends first (its upload was never seen under way)."""
    def seen() -> str:
        if (farm.job_dir(job_id) / "result.json").exists() and uploads_in_flight(farm.store):
            return "uploading"
        state = farm.job(job_id)["state"]
        return state if state in FINAL else ""

    assert wait_until(seen, 90, "the upload to be under way") == "uploading", farm.store.requests_log()


def test_store_down_during_the_upload_delays_the_result_and_runs_the_encode_once(farm: Farm) -> None:
    run = secrets.token_hex(4)
    url = f"store:///out/{run}/down.mp4"
    job_id = farm.submit({"input": "testsrc://?duration=5&size=160x120&rate=10&realtime=1",
                          "outputs": [rung(url, "160x120")]})
    wait_until(lambda: farm.job(job_id)["state"] == "running", 60, "the job to run")
    farm.store.stop()  # while it encodes: its upload finds no store
    result_json = farm.job_dir(job_id) / "result.json"
    wait_until(result_json.exists, 60, "the encode to end")
    assert json.loads(result_json.read_text())["exit_code"] == 0
    # two heartbeats after the encode ended: the agent is alive and talking, the job still waits
    first = wait_until(heartbeat_after(farm, now()), 15, "a heartbeat after the encode")
    wait_until(heartbeat_after(farm, first), 15, "a second heartbeat after the encode")
    assert farm.job(job_id)["state"] == "running"
    assert not farm.store.path(f"/out/{run}/down.mp4").exists()
    farm.store.start()
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    assert len(done["attempts"]) == 1 and farm.launches(job_id) == 1
    copy = landed(farm.store, f"/out/{run}/down.mp4")
    assert delivered(done)[url]["sha256"] == sha256(copy)
    assert abs(float(probe(copy)["format"]["duration"]) - 5.0) < 0.5
    assert temporaries(farm.store) == []


def test_agent_killed_mid_upload_resumes_the_upload_and_not_the_encode(slow_farm: Farm) -> None:
    farm, run = slow_farm, secrets.token_hex(4)
    job_id = big_output_job(farm, run)
    await_upload(farm, job_id)
    result_json = farm.job_dir(job_id) / "result.json"
    recorded = result_json.read_bytes()
    stop_process(farm.agent.proc, signal.SIGKILL)
    assert not farm.store.path(f"/out/{run}/big.mp4").exists()
    farm.restart_agent()
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    assert len(done["attempts"]) == 1 and farm.launches(job_id) == 1, farm.agent.output()
    if result_json.exists():  # delivered job dirs are kept for a while: the record is the wrapper's
        assert result_json.read_bytes() == recorded
    copy = landed(farm.store, f"/out/{run}/big.mp4")
    assert copy.stat().st_size > 5_000_000
    assert delivered(done)[f"store:///out/{run}/big.mp4"]["sha256"] == sha256(copy)
    puts = [line for line in farm.store.requests_log() if line.startswith("PUT ") and "big.mp4" in line]
    assert len(puts) >= 2, puts  # the one cut by the kill, and the one that completed
    wait_until(lambda: not uploads_in_flight(farm.store), 15, "nginx to drop the cut body")
    assert temporaries(farm.store) == []


def test_cancel_during_the_encode_leaves_nothing_in_the_store(farm: Farm) -> None:
    run = secrets.token_hex(4)
    job_id = farm.submit({"input": "testsrc://?duration=60&size=160x120&rate=10&realtime=1",
                          "outputs": [rung(f"store:///out/{run}/c.mp4", "160x120"),
                                      rung(f"store:///out/{run}/hls/c.m3u8", "160x120")]})
    outbox = farm.scratch(job_id) / "outbox"
    wait_until(lambda: any(p.is_file() and p.stat().st_size for p in outbox.rglob("*")), 60,
               "FFmpeg writing into the outbox")
    ops = farm.master.session()
    ops.post(f"{farm.master.url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    done = wait_final(farm.master, job_id, timeout=60)
    assert done["state"] == "canceled", done
    assert not farm.store.path(f"/out/{run}").exists()
    assert temporaries(farm.store) == []
    assert not [line for line in farm.store.requests_log() if f"/out/{run}/" in line]


def test_cancel_during_the_upload_leaves_no_temporary_and_no_final_object(slow_farm: Farm) -> None:
    farm, run = slow_farm, secrets.token_hex(4)
    job_id = big_output_job(farm, run)
    await_upload(farm, job_id)
    ops = farm.master.session()
    ops.post(f"{farm.master.url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    done = wait_final(farm.master, job_id, timeout=60)
    assert done["state"] == "canceled", done
    wait_until(lambda: not uploads_in_flight(farm.store), 15, "nginx to drop the cut body")
    assert not farm.store.path(f"/out/{run}/big.mp4").exists()
    assert temporaries(farm.store) == []
