"""A split job's life through a real farm: two agents, a real store, real FFmpeg, real failures.

Its parts run on both nodes and are listed under their parent; the intermediates go when the
parent succeeds or is canceled; a segment whose FFmpeg is killed fails the parent with that
segment's reason, and a retry re-runs that segment alone; a cancel reaches every part; a master
restart, or an agent killed and started again, mid-split, loses nothing and launches nothing
twice. Each source is 32 s cut every 8 s (four segments), so a segment's encode lasts long
enough to be caught running; every wait is a condition with a deadline.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import split_media
from tests.processes import wait_until
from tests.split_farm import AGENTS, WORKSPACE_MARK, SplitFarm, split_farm_on
from tests.webdav import WebDavStore

SECONDS, SEGMENT_S = 32, 8
RUNGS = {"r360.mp4": {"preset": "h264-360p"},
         "r240.mp4": {"preset": "h264-360p", "size": "426x240", "encoder_preset": "ultrafast"}}
PARTS = ("segment", "audio", "stitch")  # the children a wrapper runs (plan and sweep: the agent)
AT_REST = ("succeeded", "failed", "canceled", "lost")
DEADLINE_S = 300


@pytest.fixture
def split_farm(tmp_path: Path, webdav_store: WebDavStore) -> Iterator[SplitFarm]:
    with split_farm_on(tmp_path, webdav_store) as farm:
        yield farm


@pytest.fixture
def one_slot_farm(tmp_path: Path, webdav_store: WebDavStore) -> Iterator[SplitFarm]:
    """Agents of one slot each: a busy agent claims nothing, so no claim is cut by a kill."""
    with split_farm_on(tmp_path, webdav_store, FFRTMP_SLOTS="1") as farm:
        yield farm


class Run:
    """One split job's source and outputs, in the store or on the media root."""

    def __init__(self, farm: SplitFarm, where: str = "store") -> None:
        self.farm, self.where, self.name = farm, where, f"run-{secrets.token_hex(3)}"
        self.source = split_media.make_source(self.file("in/src.mp4"), "gop2s", seconds=SECONDS)

    def url(self, path: str) -> str:
        if self.where == "store":
            return f"store:///{self.name}/{path}"
        return f"file://{self.farm.media_root}/{self.name}/{path}"

    def file(self, path: str) -> Path:
        root = self.farm.store.root if self.where == "store" else self.farm.media_root
        return root / self.name / path

    def submit(self) -> str:
        parent_id = self.farm.submit({"input": self.url("in/src.mp4"), "split": {"segment_s": SEGMENT_S},
                                      "outputs": [{"url": self.url(f"out/{name}"), **settings}
                                                  for name, settings in RUNGS.items()]})
        assert self.farm.job(parent_id)["step"] == "split", self.farm.job(parent_id)
        return parent_id

    def workspace(self, parent_id: str) -> Path:
        return self.file(f"out/{WORKSPACE_MARK}{parent_id}")

    def output_problems(self, parent_id: str) -> list[str]:
        plan, source = self.farm.plan(parent_id), split_media.probe(self.source)
        problems = []
        for name in RUNGS:
            problems += split_media.output_problems(split_media.probe(self.file(f"out/{name}")), plan, source)
        return problems


def running(farm: SplitFarm, parent_id: str, step: str = "segment") -> list[dict[str, Any]]:
    return [c for c in farm.parts(parent_id, step) if c["state"] == "running"]


def ffmpeg_writing(farm: SplitFarm, marker: str) -> psutil.Process | None:
    """This farm's FFmpeg whose command line names ``marker`` (an intermediate's name)."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "ffmpeg" and marker in line and str(farm.tmp) in line:
            return proc
    return None


def kill_segment(farm: SplitFarm, index: int) -> int:
    """SIGKILL the FFmpeg of segment ``index`` once it runs; its pid."""
    proc = wait_until(lambda: ffmpeg_writing(farm, f"seg-{index:05d}."), DEADLINE_S,
                      f"the FFmpeg of segment {index} to run")
    os.kill(proc.pid, signal.SIGKILL)
    return proc.pid


def all_at_rest(farm: SplitFarm, parent_id: str) -> list[dict[str, Any]]:
    children = farm.children(parent_id)
    return children if all(c["state"] in AT_REST for c in children) else []


def reason(job: dict[str, Any]) -> str:
    """The reason of the job's last transition (a split job's names the child that decided it)."""
    return str(job["history"][-1]["reason"] or "")


def child_reason(farm: SplitFarm, child: dict[str, Any]) -> str:
    return str(farm.job(child["id"])["attempts"][-1]["result"]["reason"])


def reran(farm: SplitFarm, parent_id: str) -> dict[str, list[tuple[int, str | None, str]]]:
    """Children whose work ran more than once, or did not succeed: only an attempt that never
    started (an assignment whose claim was cut by a restart, requeued by its lease) may come
    before the one that succeeded."""
    found = {}
    for child in farm.children(parent_id):
        attempts = farm.job(child["id"])["attempts"]
        started_before = [a for a in attempts[:-1] if a["started_at"] is not None]
        if started_before or not attempts or attempts[-1]["state"] != "succeeded":
            found[f"{child['step']} {child['id']}"] = [(a["attempt"], a["started_at"], a["state"])
                                                       for a in attempts]
    return found


def launched_once(farm: SplitFarm, parent_id: str) -> dict[str, int]:
    """Each wrapper-run child's launches, for those not launched exactly once."""
    counts = {f"{c['step']} {c['id']}": farm.launches(c["id"]) for c in farm.children(parent_id)
              if c["step"] in PARTS}
    return {name: n for name, n in counts.items() if n != 1}


# --- success: both nodes, listed under the parent, nothing left ---


def test_parts_run_on_both_agents_listed_under_the_parent_and_leave_nothing(split_farm: SplitFarm) -> None:
    run = Run(split_farm)
    parent_id = run.submit()
    done = split_farm.wait_state(parent_id, DEADLINE_S)
    assert done["state"] == "succeeded", done
    assert done["step"] == "split" and done["parent_id"] is None and done["progress"]["percent"] == 100, done
    children = split_farm.children(parent_id)
    steps = [c["step"] for c in children]
    segments = split_farm.parts(parent_id, "segment")
    assert steps.count("plan") == 1 and steps.count("audio") == 1 and steps.count("stitch") == 1, steps
    assert [s["spec"]["step"]["index"] for s in segments] == list(range(len(segments))), segments
    assert len(segments) == len(split_farm.plan(parent_id)["segments"]) >= 4
    assert {c["parent_id"] for c in children} == {parent_id}
    assert [c["seq"] for c in children] == sorted(c["seq"] for c in children)  # oldest first
    assert all(c["state"] == "succeeded" and c["attempt"] == 1 for c in children), children
    names = split_farm.node_names()
    assert {names[s["node_id"]] for s in segments} == set(AGENTS), [(s["id"], s["node_id"]) for s in segments]
    top = [j["id"] for j in split_farm.get("/api/v1/jobs")["jobs"]]
    assert top == [parent_id], top  # children are listed only when asked for
    everything = {j["id"] for j in split_farm.get("/api/v1/jobs?children=1&limit=500")["jobs"]}
    assert everything == {parent_id} | {c["id"] for c in children}
    assert launched_once(split_farm, parent_id) == {}
    assert run.output_problems(parent_id) == []
    assert split_farm.leftovers() == []


# --- a segment that fails for real, and the retry ---


def test_a_killed_segment_fails_the_parent_and_a_retry_reruns_only_it(split_farm: SplitFarm) -> None:
    run = Run(split_farm)
    parent_id = run.submit()
    kill_segment(split_farm, 2)
    failed = split_farm.wait_state(parent_id, DEADLINE_S, ("failed",))
    children = wait_until(lambda: all_at_rest(split_farm, parent_id), DEADLINE_S, "every part at rest")
    [broken] = [c for c in children if c["state"] != "succeeded"]
    assert (broken["step"], broken["spec"]["step"]["index"]) == ("segment", 2), broken
    assert broken["state"] == "failed", broken
    assert not any(c["step"] == "stitch" for c in children), children
    why = child_reason(split_farm, broken)
    assert reason(split_farm.job(parent_id)) == f"segment 2 failed: {why}", (failed, why)
    kept = sorted(p.name for p in run.workspace(parent_id).iterdir())
    assert "seg-00000.r0.mp4" in kept and "seg-00002.r0.mp4" not in kept, kept  # kept for the retry
    split_farm.cli("jobs", "retry", parent_id)
    done = split_farm.wait_state(parent_id, DEADLINE_S, ("succeeded", "failed", "canceled"))
    assert done["state"] == "succeeded", (done, reason(done))
    attempts = {c["id"]: c["attempt"] for c in split_farm.children(parent_id)}
    assert attempts.pop(broken["id"]) == 2 and set(attempts.values()) == {1}, attempts
    launches = {c["id"]: split_farm.launches(c["id"]) for c in split_farm.children(parent_id)
                if c["step"] in PARTS}
    assert launches.pop(broken["id"]) == 2 and set(launches.values()) == {1}, launches
    assert run.output_problems(parent_id) == []
    assert split_farm.leftovers() == []


def test_a_failed_split_job_canceled_sweeps_its_intermediates(split_farm: SplitFarm) -> None:
    run = Run(split_farm, "media")
    parent_id = run.submit()
    kill_segment(split_farm, 1)
    split_farm.wait_state(parent_id, DEADLINE_S, ("failed",))
    wait_until(lambda: all_at_rest(split_farm, parent_id), DEADLINE_S, "every part at rest")
    assert any(p.name.startswith("seg-") for p in run.workspace(parent_id).iterdir())
    split_farm.cli("jobs", "cancel", parent_id)
    done = split_farm.wait_state(parent_id, DEADLINE_S, ("canceled",))
    sweeps = split_farm.parts(parent_id, "sweep")
    assert [s["state"] for s in sweeps] == ["succeeded"], (done, sweeps)
    assert split_farm.leftovers() == []
    assert not run.file("out/r360.mp4").exists()


# --- cancel ---


def test_cancel_mid_encode_reaches_every_part_and_leaves_the_store_clean(split_farm: SplitFarm) -> None:
    run = Run(split_farm)
    parent_id = run.submit()
    wait_until(lambda: running(split_farm, parent_id), DEADLINE_S, "a segment to run")
    assert split_farm.job(parent_id)["state"] == "running"
    split_farm.cli("jobs", "cancel", parent_id)
    done = split_farm.wait_state(parent_id, DEADLINE_S, ("canceled", "succeeded", "failed"))
    assert done["state"] == "canceled", (done, reason(done))
    children = split_farm.children(parent_id)
    parts = [c for c in children if c["step"] in ("segment", "audio", "stitch")]
    assert any(c["state"] == "canceled" for c in parts), parts
    assert all(c["state"] in ("canceled", "succeeded") for c in parts), parts
    assert not any(c["step"] == "stitch" and c["state"] == "succeeded" for c in parts), parts
    sweeps = [c["state"] for c in children if c["step"] == "sweep"]
    wrote = any(c["state"] == "succeeded" for c in parts)  # then there is a workspace to remove
    assert sweeps == (["succeeded"] if wrote else []), children
    assert wait_until(lambda: ffmpeg_writing(split_farm, WORKSPACE_MARK) is None, 30, "no FFmpeg left")
    assert split_farm.leftovers() == []
    assert not run.file("out/r360.mp4").exists() and not run.file("out/r240.mp4").exists()
    reply = split_farm.master.session().post(f"{split_farm.master.url}/api/v1/jobs/{parent_id}/retry",
                                             timeout=10)
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "not_retryable", reply.text


# --- restarts ---


def test_a_master_restart_mid_split_loses_nothing(split_farm: SplitFarm) -> None:
    run = Run(split_farm)
    parent_id = run.submit()
    wait_until(lambda: running(split_farm, parent_id), DEADLINE_S, "a segment to run")
    split_farm.restart_master()
    done = split_farm.wait_state(parent_id, DEADLINE_S)
    assert done["state"] == "succeeded", (done, reason(done))
    assert reran(split_farm, parent_id) == {}
    assert launched_once(split_farm, parent_id) == {}
    assert run.output_problems(parent_id) == []
    assert split_farm.leftovers() == []


def test_an_agent_killed_and_restarted_mid_split_loses_nothing(one_slot_farm: SplitFarm) -> None:
    """The agent is killed while FFmpeg encodes a segment for it, its one slot busy: the
    wrapper follows the encode on, and the agent started again delivers it. (Killed between
    writing launched.json and its wrapper's first record, an agent restarted reports that
    child lost track of, by the rule that nothing is started twice: not what this checks.)"""
    farm, victim = one_slot_farm, AGENTS[0]
    run = Run(farm)
    parent_id = run.submit()
    work = str(farm.work_dir(victim))

    def encoding_on_victim() -> list[dict[str, Any]]:
        names = farm.node_names()
        mine = [c for c in running(farm, parent_id) if names.get(c["node_id"]) == victim]
        return [c for c in mine if ffmpeg_writing(farm, f"{work}/{c['id']}.")]

    [segment] = wait_until(encoding_on_victim, DEADLINE_S, f"a segment encoding on {victim}")
    farm.kill_agent(victim)
    farm.start_agent(victim)
    done = farm.wait_state(parent_id, DEADLINE_S)
    assert done["state"] == "succeeded", (done, reason(done))
    assert reran(farm, parent_id) == {}
    assert farm.job(segment["id"])["attempt"] == 1
    assert launched_once(farm, parent_id) == {}
    assert run.output_problems(parent_id) == []
    assert farm.leftovers() == []
