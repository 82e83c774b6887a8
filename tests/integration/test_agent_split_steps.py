"""The agent's side of a split job, end to end: a gunicorn master, a real agent with FFmpeg, and
a real nginx WebDAV store (``tests/webdav.py``).

The plan is probed by the agent itself and its result carries the cuts of a real file; the
stitch stages every intermediate from the store (one file per rung and segment, and the audio)
and removes the workspace once the outputs are in place; a sweep after a cancel removes the
workspace in the store and on a media root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.contract import FINAL
from ffrtmp.files import read_json
from tests.helpers import wait_until
from tests.integration.test_media_plane import Farm, farm_on, landed
from tests.webdav import WebDavStore, start_webdav

SECONDS, RATE = 4, 25
FRAMES = SECONDS * RATE
MISSING_AUDIO_ENCODER = "libfdk_aac"  # never in a Debian FFmpeg: the audio part waits for it


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    with farm_on(tmp_path, start_webdav(tmp_path)) as started:
        yield started


def make_source(path: Path) -> Path:
    """A tone and a test pattern with a keyframe every second: four cuts at a 1 s target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={RATE}:duration={SECONDS}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE), "-sc_threshold", "0",
                    "-c:a", "aac", "-shortest", str(path)], check=True, timeout=60)
    return path


def rungs(base: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"url": f"{base}/{name}", "preset": "h264-480p", "size": size,
             "encoder_preset": "ultrafast", **extra}
            for name, size in (("a.mp4", "160x120"), ("b.mp4", "96x72"))]


def children(farm: Farm, parent: str) -> list[dict[str, Any]]:
    reply = farm.master.session().get(f"{farm.master.url}/api/v1/jobs", params={"parent": parent},
                                      timeout=10)
    reply.raise_for_status()
    return list(reply.json()["jobs"])


def child(farm: Farm, parent: str, step: str) -> dict[str, Any]:
    """The parent's one child of ``step``, with its attempts."""
    [found] = [c for c in children(farm, parent) if c["step"] == step]
    return farm.job(found["id"])


def wait_state(farm: Farm, job_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
    return wait_until(lambda: (j := farm.job(job_id))["state"] in states and j, timeout,
                      f"job {job_id} to be {'/'.join(sorted(states))}")


def frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=30)
    return int(out.stdout.strip())


def workspaces(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".ffrtmp-split-*"))


def test_a_split_job_plans_stages_every_intermediate_and_leaves_no_workspace(farm: Farm) -> None:
    make_source(farm.store.path("/in/film.mp4"))
    parent = farm.submit({"input": "store:///in/film.mp4", "split": {"segment_s": 1},
                          "outputs": rungs("store:///out")})
    done = wait_state(farm, parent, set(FINAL), timeout=240)
    assert done["state"] == "succeeded", (done, children(farm, parent))

    plan = child(farm, parent, "plan")
    [attempt] = plan["attempts"]
    cuts = attempt["result"]["plan"]
    assert [c["start_s"] for c in cuts["segments"]] == ["0.000000", "1.000000", "2.000000",
                                                        "3.000000"]
    assert [c["frames"] for c in cuts["segments"]] == [RATE] * SECONDS
    assert cuts["frames"] == FRAMES and cuts["audio"] is True

    stitch = child(farm, parent, "stitch")
    staged = read_json(farm.job_dir(stitch["id"]) / "fetched.json")
    assert staged["files"] == SECONDS * 2 + 1  # every rung of every segment, and the audio
    for name in ("a.mp4", "b.mp4"):
        assert frames(landed(farm.store, f"/out/{name}")) == FRAMES
    assert workspaces(farm.store.root) == []
    assert f"DELETE /out/.ffrtmp-split-{parent}/ 204" in farm.store.requests_log()


@pytest.mark.parametrize("where", ["store", "media-root"])
def test_a_sweep_removes_the_workspace_of_a_canceled_split(farm: Farm, where: str) -> None:
    """The audio part waits for an encoder no node has, so the segments succeed and the split
    stays unfinished; canceling it then leaves a workspace that only the sweep removes."""
    root = Path(farm.master.env["FFRTMP_MEDIA_ROOTS"])
    if where == "store":
        make_source(farm.store.path("/in/film.mp4"))
        source, base, held = "store:///in/film.mp4", "store:///out", farm.store.root / "out"
    else:
        make_source(root / "in" / "film.mp4")
        source, base, held = f"{root}/in/film.mp4", f"{root}/out", root / "out"
    parent = farm.submit({"input": source, "split": {"segment_s": 1},
                          "outputs": rungs(base, audio_codec=MISSING_AUDIO_ENCODER)})
    wait_until(lambda: (segments := [c for c in children(farm, parent) if c["step"] == "segment"])
               and all(c["state"] == "succeeded" for c in segments), 180, "every segment to succeed")
    assert len(workspaces(held)) == 1 and any(held.rglob("seg-00003.r1.mp4"))

    farm.master.session().post(f"{farm.master.url}/api/v1/jobs/{parent}/cancel",
                               timeout=10).raise_for_status()
    assert wait_state(farm, parent, {"canceled"})["state"] == "canceled"
    sweep = child(farm, parent, "sweep")
    assert sweep["state"] == "succeeded", sweep
    assert workspaces(held) == []
    assert not any(held.rglob("seg-*"))


def _running_plan(farm: Farm, store: WebDavStore) -> tuple[str, dict[str, Any]]:
    """A split job of a store source, once its plan runs: the parent's id and the plan child."""
    make_source(store.path("/in/film.mp4"))
    parent = farm.submit({"input": "store:///in/film.mp4", "split": {"segment_s": 1},
                          "outputs": rungs("store:///out")})
    plan = wait_until(lambda: (c := child(farm, parent, "plan"))["state"] == "running" and c,
                      60, "the plan to run")
    return parent, plan


def test_a_plan_cut_by_an_agent_restart_is_run_again_in_the_same_attempt(tmp_path: Path) -> None:
    """A probe is a message, not work: the restarted agent stages the rest and probes again."""
    store = start_webdav(tmp_path, download_bytes_per_s=16_384)  # staging takes seconds
    with farm_on(tmp_path, store) as farm:
        parent, plan = _running_plan(farm, store)
        part = farm.scratch(plan["id"]) / "inbox" / "film.mp4.part"
        wait_until(part.exists, 30, "the staging to begin")
        farm.agent.proc.kill()
        farm.agent.proc.wait(10)
        farm.restart_agent()
        done = wait_state(farm, plan["id"], set(FINAL), timeout=120)
        assert done["state"] == "succeeded", done
        assert [a["attempt"] for a in done["attempts"]] == [1]
        assert done["attempts"][0]["result"]["plan"]["frames"] == FRAMES
        farm.master.session().post(f"{farm.master.url}/api/v1/jobs/{parent}/cancel",
                                   timeout=10).raise_for_status()
        wait_state(farm, parent, {"canceled"})


def test_a_running_plan_is_canceled_with_its_split(tmp_path: Path) -> None:
    store = start_webdav(tmp_path, download_bytes_per_s=8192)  # staging outlasts a heartbeat
    with farm_on(tmp_path, store) as farm:
        parent, plan = _running_plan(farm, store)
        farm.master.session().post(f"{farm.master.url}/api/v1/jobs/{parent}/cancel",
                                   timeout=10).raise_for_status()
        assert wait_state(farm, parent, {"canceled"}, timeout=60)["state"] == "canceled"
        done = farm.job(plan["id"])
        assert done["state"] == "canceled"
        assert done["attempts"][0]["result"]["reason"] == "canceled"
        assert [c["step"] for c in children(farm, parent)] == ["plan"]  # nothing else began
        assert not farm.scratch(plan["id"]).exists()  # the partial copy went with it
