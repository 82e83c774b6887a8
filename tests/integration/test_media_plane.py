"""The media plane end to end: a gunicorn master, a real agent with its wrappers and FFmpeg, and a
real nginx WebDAV store on loopback (``tests/webdav.py``). No shared filesystem is involved: the
agent reads inputs from the store and delivers outputs to it over HTTP; the test then reads the
store's own files (under its root) to check what landed.

The recovery cases (store down, agent killed mid-upload, cancel) are in
``test_media_plane_recovery.py``; the helpers here serve both.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from tests.conftest import (
    AgentProcess,
    MasterProcess,
    agent_env,
    kill_workloads,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until
from tests.integration.test_agent_jobs import job, probe, submit, video, wait_final
from tests.processes import OPERATOR_TOKEN
from tests.webdav import WebDavStore

LADDER = (("a-360p.mp4", "640x360"), ("a-240p.mp4", "426x240"))


# --- the farm: one master, one agent configured with the store ---


@dataclass
class Farm:
    tmp: Path
    store: WebDavStore
    master: MasterProcess
    agent: AgentProcess
    started: list[AgentProcess] = field(default_factory=list)

    def submit(self, spec: dict[str, Any]) -> str:
        return submit(self.master, spec)

    def job(self, job_id: str) -> dict[str, Any]:
        return job(self.master, job_id)

    def restart_agent(self) -> AgentProcess:
        """The same node again (same state dir, same log file), as after a crash."""
        self.agent = start_agent(self.tmp, self.master, env=self.agent.env)
        self.started.append(self.agent)
        return self.agent

    def job_dir(self, job_id: str, attempt: int = 1) -> Path:
        """The attempt's records (assignment, result.json, ...) in the state dir."""
        return self.agent.state_dir / "jobs" / f"{job_id}.{attempt}"

    def scratch(self, job_id: str, attempt: int = 1) -> Path:
        """The attempt's media (``inbox/``, ``outbox/``) in the work dir."""
        return Path(self.agent.env["FFRTMP_WORK_DIR"]) / f"{job_id}.{attempt}"

    def cli(self, *argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        environ = {"FFRTMP_MASTER_URL": self.master.url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
                   "FFRTMP_CONFIG": str(self.tmp / "no-cli.env")}
        status = cli.main(list(argv), env=Env(stdout=out, stderr=err, environ=environ, stdin=io.StringIO()))
        assert status == 0, (status, out.getvalue(), err.getvalue())
        return out.getvalue()

    def launches(self, job_id: str) -> int:
        """How many times a wrapper (so an encode) was started for the job, across agent restarts."""
        lines = self.agent.output().splitlines()
        return sum(1 for line in lines if "launched wrapper" in line and f"job={job_id}" in line)


def start_farm(tmp: Path, store: WebDavStore) -> Farm:
    master = start_master(tmp)
    env = agent_env(tmp, master, FFRTMP_MEDIA_STORE_URL=store.url,
                    FFRTMP_MEDIA_CREDENTIALS_FILE=str(store.netrc))
    try:
        agent = start_agent(tmp, master, env=env)
    except BaseException:
        stop_process(master.proc)
        raise
    return Farm(tmp, store, master, agent, [agent])


def stop_farm(farm: Farm) -> None:
    for agent in farm.started:
        stop_process(agent.proc, signal.SIGKILL)
    kill_workloads(farm.tmp)
    stop_process(farm.master.proc)
    farm.store.stop()
    # shown by pytest only when the test failed
    print(f"--- agent ---\n{farm.agent.output()}\n--- master ---\n{farm.master.output()}")
    print("--- store requests ---\n" + "\n".join(farm.store.requests_log()))


@contextmanager
def farm_on(tmp: Path, store: WebDavStore) -> Iterator[Farm]:
    """A farm on a store the caller started for it; the store stops with it, even when the
    farm fails to start."""
    try:
        started = start_farm(tmp, store)
    except BaseException:
        store.stop()
        raise
    try:
        yield started
    finally:
        stop_farm(started)


@pytest.fixture
def farm(tmp_path: Path, webdav_store: WebDavStore) -> Iterator[Farm]:
    started = start_farm(tmp_path, webdav_store)
    yield started
    stop_farm(started)


# --- media and the store's files ---


def make_source(path: Path, seconds: float = 4, size: str = "640x360", *, noisy: bool = False) -> Path:
    """A test source written straight into the store's root (the store serves what is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video_filter = ["-vf", "noise=alls=80:allf=t"] if noisy else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", *video_filter,
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)],
                   check=True, timeout=120)
    return path


def now() -> str:
    """The time as the master stamps it (ISO-8601, milliseconds, Z)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def landed(store: WebDavStore, store_path: str) -> Path:
    """The store's file at ``store_path``; fails naming what the store does hold when it is missing."""
    path = store.path(store_path)
    held = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert path.is_file(), f"{store_path} is not in the store, which holds {held}"
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def temporaries(store: WebDavStore) -> list[str]:
    """Upload temporaries (``.NAME.TAG.part``) anywhere under the store's root."""
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*.part"))


def uploads_in_flight(store: WebDavStore) -> bool:
    """nginx is receiving a PUT body: its client body temp file (under the root) has bytes."""
    return any(p.is_file() and p.stat().st_size > 0 for p in (store.root / ".tmp").rglob("*"))


def writes(store: WebDavStore) -> list[tuple[str, str]]:
    """(method, path) of every successful PUT and MOVE, in the order nginx finished them."""
    found = []
    for line in store.requests_log():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("PUT", "MOVE") and parts[-1].startswith("2"):
            found.append((parts[0], parts[1]))
    return found


def rung(url: str, size: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "preset": "h264-480p", "size": size, "encoder_preset": "ultrafast", **extra}


def delivered(done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The attempt's delivered outputs by URL."""
    [attempt] = done["attempts"]
    return {out["url"]: out for out in attempt["result"].get("outputs") or []}


# --- where secrets could leak ---


def log_texts(farm: Farm) -> dict[str, str]:
    """Every log a user could read: daemon output, the log dir, each job's wrapper output and FFmpeg log."""
    files = [*farm.tmp.glob("*.out"), *(p for p in (farm.tmp / "log").rglob("*") if p.is_file())]
    for job_dir in farm.agent.job_dirs():
        files += [job_dir / "wrapper.out", job_dir / "output.log"]
    return {str(p): p.read_text(errors="replace") for p in files if p.exists()}


def operator_views(farm: Farm, job_id: str) -> dict[str, str]:
    """What an operator sees of a job: the API's views and ``ffrtmp jobs show``."""
    ops = farm.master.session()
    views = {path: ops.get(farm.master.url + path, timeout=10).text
             for path in (f"/api/v1/jobs/{job_id}", "/api/v1/jobs", f"/api/v1/jobs/{job_id}/logs")}
    views["jobs show"] = farm.cli("jobs", "show", job_id)
    views["jobs show --json"] = farm.cli("jobs", "show", job_id, "--json")
    return views


def assert_nowhere(secret: str, farm: Farm, job_id: str) -> None:
    places = {**log_texts(farm), **operator_views(farm, job_id)}
    leaks = sorted(name for name, text in places.items() if secret in text)
    assert not leaks, f"{secret!r} appears in {leaks}"
    assert len(places) > 5, places.keys()  # the scan did look at the logs


# --- the tests ---


def test_store_input_and_a_two_rung_ladder_back_to_the_store(farm: Farm) -> None:
    make_source(farm.store.path("/in/src.mp4"), seconds=4)
    run = secrets.token_hex(4)
    urls = {name: f"store:///out/{run}/{name}" for name, _ in LADDER}
    job_id = farm.submit({"input": "store:///in/src.mp4",
                          "outputs": [rung(urls[name], size) for name, size in LADDER]})
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    assert "GET /in/src.mp4 200" in farm.store.requests_log()  # the input came from the store
    outputs = delivered(done)
    assert sorted(outputs) == sorted(urls.values()), outputs
    for name, size in LADDER:
        copy = landed(farm.store, f"/out/{run}/{name}")
        info = probe(copy)
        assert f"{video(info)['width']}x{video(info)['height']}" == size
        assert abs(float(info["format"]["duration"]) - 4.0) < 0.3
        out = outputs[urls[name]]
        assert out["bytes"] == copy.stat().st_size and out["sha256"] == sha256(copy)
        assert out["size"] == size and abs(out["duration_s"] - 4.0) < 0.3
    shown = farm.cli("jobs", "show", job_id)
    for out in outputs.values():
        assert out["url"] in shown and out["sha256"][:8] in shown, shown
    scratch = farm.scratch(job_id)
    wait_until(lambda: not scratch.exists(), 15, "the job's staged input and encoded outputs to be cleaned")
    assert temporaries(farm.store) == []
    assert_nowhere(farm.store.password, farm, job_id)


def test_hls_goes_up_whole_with_the_playlist_last(farm: Farm) -> None:
    run = secrets.token_hex(4)
    url = f"store:///out/{run}/hls/index.m3u8"
    job_id = farm.submit({"input": "testsrc://?duration=10&size=320x180&rate=10",
                          "outputs": [rung(url, "320x180")]})
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    playlist_path = landed(farm.store, f"/out/{run}/hls/index.m3u8")
    playlist = playlist_path.read_text()
    named = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert "#EXT-X-ENDLIST" in playlist and len(named) >= 2, playlist
    for segment in named:
        assert (playlist_path.parent / segment).stat().st_size > 0, segment
    assert abs(float(probe(playlist_path)["format"]["duration"]) - 10.0) < 1.0
    out = delivered(done)[url]
    assert out["bytes"] == playlist_path.stat().st_size and out["sha256"] == sha256(playlist_path)
    order = writes(farm.store)
    playlist_at = max(i for i, (_, path) in enumerate(order) if "index.m3u8" in path.rsplit("/", 1)[-1])
    for segment in named:
        last = max((i for i, (_, path) in enumerate(order) if segment in path.rsplit("/", 1)[-1]),
                   default=None)
        assert last is not None and last < playlist_at, (segment, order)
    assert temporaries(farm.store) == []


def test_a_refused_upload_fails_the_job_naming_the_url_and_status(farm: Farm) -> None:
    job_id = farm.submit({"input": "testsrc://?duration=1&size=160x120&rate=10",
                          "outputs": [rung("store:///forbidden/x.mp4", "160x120")]})
    done = wait_final(farm.master, job_id, timeout=90)
    assert done["state"] == "failed", done
    result = done["attempts"][0]["result"]
    assert result["reason"].startswith("output_refused: "), result
    assert "/forbidden/" in result["reason"] and "403" in result["reason"], result
    assert result["platform_sla"] is False
    assert not farm.store.path("/forbidden/x.mp4").exists()
    assert temporaries(farm.store) == []
    assert "403" in farm.cli("jobs", "show", job_id)


def test_presigned_urls_work_and_their_signatures_show_nowhere(farm: Farm) -> None:
    make_source(farm.store.path("/in/src.mp4"), seconds=2, size="320x180")
    run = secrets.token_hex(4)
    source = f"{farm.store.url}/in/src.mp4?X-Amz-Signature=SECRETIN&X-Amz-Expires=60"
    target = f"{farm.store.url}/out/{run}/p.mp4?X-Amz-Signature=SECRETOUT"
    job_id = farm.submit({"input": source, "outputs": [rung(target, "320x180")]})
    done = wait_final(farm.master, job_id, timeout=120)
    assert done["state"] == "succeeded", done
    copy = landed(farm.store, f"/out/{run}/p.mp4")
    assert abs(float(probe(copy)["format"]["duration"]) - 2.0) < 0.3
    [out] = delivered(done).values()
    assert out["bytes"] == copy.stat().st_size and out["sha256"] == sha256(copy)
    assert out["url"] == f"{farm.store.url}/out/{run}/p.mp4?REDACTED"
    assert "launched wrapper" in farm.agent.output()  # the agent's log is the one scanned
    for secret in ("SECRETIN", "SECRETOUT"):
        assert_nowhere(secret, farm, job_id)


def test_a_refused_input_names_it_and_the_credentials_show_nowhere(farm: Farm) -> None:
    job_id = farm.submit({"input": "store:///in/missing.mp4",
                          "outputs": [rung(f"store:///out/{secrets.token_hex(4)}/m.mp4", "160x120")]})
    done = wait_final(farm.master, job_id, timeout=90)
    assert done["state"] == "failed", done
    result = done["attempts"][0]["result"]
    assert result["reason"].startswith("input_refused: GET "), result
    assert "/in/missing.mp4" in result["reason"] and "404" in result["reason"], result
    assert result["platform_sla"] is False
    assert farm.launches(job_id) == 0  # nothing to encode: the input never arrived
    assert_nowhere(farm.store.password, farm, job_id)


def ready(agent: AgentProcess) -> requests.Response:
    return requests.get(agent.url + "/ready", timeout=5)


def heartbeat_after(farm: Farm, moment: str) -> Callable[[], str]:
    """The node's last heartbeat once it is later than ``moment`` (ISO-8601 text compares in order)."""
    def seen() -> str:
        nodes = farm.master.session().get(farm.master.url + "/api/v1/nodes", timeout=10).json()["nodes"]
        beat = nodes[0]["last_heartbeat"] or ""
        return beat if beat > moment else ""
    return seen


def test_an_unreachable_store_makes_the_agent_unready_and_it_claims_nothing(farm: Farm) -> None:
    assert ready(farm.agent).json()["checks"]["media"] == "reachable"
    farm.store.stop()
    wait_until(lambda: ready(farm.agent).status_code == 503, 30, "the agent to be unready")
    unready_at = now()
    reply = ready(farm.agent)
    media = reply.json()["checks"]["media"]
    assert reply.status_code == 503 and media.startswith("unreachable"), reply.json()
    # a loop pass that heartbeats after this also checks readiness before any claim, and the
    # (long-polling) claim of the pass before it has returned by then: the loop is sequential
    wait_until(heartbeat_after(farm, unready_at), 15, "a heartbeat after the agent became unready")
    run = secrets.token_hex(4)
    job_id = farm.submit({"input": "testsrc://?duration=1&size=160x120&rate=10",
                          "outputs": [rung(f"store:///out/{run}/r.mp4", "160x120")]})
    submitted = farm.job(job_id)["created_at"]
    first = wait_until(heartbeat_after(farm, submitted), 15, "a heartbeat after the submit")
    wait_until(heartbeat_after(farm, first), 15, "a second heartbeat after the submit")
    assert farm.job(job_id)["state"] == "queued" and farm.job(job_id)["attempts"] == []
    farm.store.start()
    wait_until(lambda: ready(farm.agent).status_code == 200, 30, "the agent ready again")
    assert wait_final(farm.master, job_id, timeout=90)["state"] == "succeeded"
    assert landed(farm.store, f"/out/{run}/r.mp4").stat().st_size > 0
