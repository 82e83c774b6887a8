"""Real jobs end to end: a master under gunicorn, real agents, real ffmpeg, outputs checked by ffprobe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import requests

from tests.conftest import (
    AgentProcess,
    MasterProcess,
)
from tests.helpers import wait_until

FINAL = ("succeeded", "failed", "canceled", "lost")


def media(master: MasterProcess) -> Path:
    return Path(master.env["FFRTMP_MEDIA_ROOTS"])


def submit(master: MasterProcess, spec: dict[str, Any]) -> str:
    reply = master.session().post(master.url + "/api/v1/jobs", json=spec, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["job"]["id"]


def job(master: MasterProcess, job_id: str) -> dict[str, Any]:
    return master.session().get(f"{master.url}/api/v1/jobs/{job_id}", timeout=10).json()["job"]


def wait_final(master: MasterProcess, job_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_until(lambda: (j := job(master, job_id))["state"] in FINAL and j, timeout,
                      f"job {job_id} to finish")


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def video(info: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def make_source(path: Path, seconds: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=640x360:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", "-shortest", str(path)], check=True, timeout=60)


def test_file_transcode_to_mp4_and_mkv(master_proc: MasterProcess, agent: AgentProcess) -> None:
    root = media(master_proc)
    make_source(root / "in" / "source.mp4")
    job_id = submit(master_proc, {
        "input": f"file://{root}/in/source.mp4",
        "outputs": [{"url": f"file://{root}/out/a.mp4", "preset": "h264-480p", "size": "320x180",
                     "encoder_preset": "ultrafast"},
                    {"url": f"file://{root}/out/a.mkv", "preset": "h264-480p", "size": "480x270",
                     "encoder_preset": "ultrafast"}]})
    done = wait_final(master_proc, job_id)
    assert done["state"] == "succeeded", done
    for name, (width, height) in (("a.mp4", (320, 180)), ("a.mkv", (480, 270))):
        info = probe(root / "out" / name)
        v = video(info)
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", width, height)
        assert abs(float(info["format"]["duration"]) - 3.0) < 0.3
        assert any(s["codec_name"] == "aac" for s in info["streams"])
    result = done["attempts"][0]["result"]
    assert result["exit_code"] == 0 and result["platform_sla"] is True


def test_ladder_and_hls_from_one_decode(master_proc: MasterProcess, agent: AgentProcess) -> None:
    root = media(master_proc)
    job_id = submit(master_proc, {
        "input": "testsrc://?duration=4&size=640x360&rate=25",
        "outputs": [{"url": f"file://{root}/ladder/360.mp4", "preset": "h264-480p", "size": "640x360",
                     "encoder_preset": "ultrafast"},
                    {"url": f"file://{root}/ladder/180.mp4", "preset": "h264-480p", "size": "320x180",
                     "video_bitrate": "200k", "encoder_preset": "ultrafast"},
                    {"url": f"file://{root}/hls/index.m3u8", "preset": "h264-480p", "size": "320x180",
                     "encoder_preset": "ultrafast"}]})
    done = wait_final(master_proc, job_id)
    assert done["state"] == "succeeded", done
    for name, height in (("360.mp4", 360), ("180.mp4", 180)):
        info = probe(root / "ladder" / name)
        assert video(info)["height"] == height
        assert abs(float(info["format"]["duration"]) - 4.0) < 0.3
    playlist = (root / "hls" / "index.m3u8").read_text()
    segments = sorted((root / "hls").glob("*.ts"))
    assert "#EXT-X-ENDLIST" in playlist and segments
    assert all(seg.name in playlist for seg in segments)
    info = probe(root / "hls" / "index.m3u8")
    assert video(info)["codec_name"] == "h264" and abs(float(info["format"]["duration"]) - 4.0) < 0.5


def test_failed_workload_is_a_failed_job_with_the_sla_met(master_proc: MasterProcess,
                                                          agent: AgentProcess) -> None:
    root = media(master_proc)
    job_id = submit(master_proc, {"input": f"file://{root}/missing.mp4",
                                  "outputs": [{"url": f"file://{root}/out/x.mp4", "preset": "h264-480p"}]})
    done = wait_final(master_proc, job_id)
    assert done["state"] == "failed"
    result = done["attempts"][0]["result"]
    assert result["exit_code"] != 0 and result["platform_sla"] is True
    assert result["reason"] == "workload_failed"
    log = master_proc.session().get(f"{master_proc.url}/api/v1/jobs/{job_id}/logs", timeout=10).json()
    assert "missing.mp4" in log["log"]
    assert requests.get(agent.url + "/violations", timeout=5).json() == []


def test_gpu_job_never_reaches_a_cpu_only_node(master_proc: MasterProcess, agent: AgentProcess) -> None:
    root = media(master_proc)
    gpu = submit(master_proc, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                               "outputs": [{"url": f"file://{root}/gpu.mp4", "preset": "h264-480p",
                                            "video_codec": "h264_nvenc"}]})
    cpu = [submit(master_proc, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                                "outputs": [{"url": f"file://{root}/cpu{i}.mp4", "preset": "h264-480p",
                                             "encoder_preset": "ultrafast"}]}) for i in range(3)]
    for job_id in cpu:
        assert wait_final(master_proc, job_id)["state"] == "succeeded"
    gpu_job = job(master_proc, gpu)
    assert gpu_job["state"] == "queued" and gpu_job["attempts"] == []
    assert "h264_nvenc" in gpu_job["capabilities"]


def test_drain_holds_new_jobs_until_undrain(master_proc: MasterProcess, agent: AgentProcess) -> None:
    ops = master_proc.session()
    [node] = ops.get(master_proc.url + "/api/v1/nodes", timeout=10).json()["nodes"]
    ops.post(f"{master_proc.url}/api/v1/nodes/{node['id']}/drain", timeout=10).raise_for_status()
    wait_until(lambda: "master says drain" in agent.output(), 10, "the agent to hear of the drain")
    root = media(master_proc)
    job_id = submit(master_proc, {"input": "testsrc://?duration=1&size=160x120&rate=10",
                                  "outputs": [{"url": f"file://{root}/d.mp4", "preset": "h264-480p"}]})
    # two heartbeats later the job is still queued: nothing claims for a draining node
    beats = agent.output().count("\n")
    wait_until(lambda: job(master_proc, job_id)["state"] == "queued"
               and requests.get(agent.url + "/metrics", timeout=5).text.count("worker_free_slots 2.0") == 1
               and agent.output().count("\n") >= beats, 5, "a drained idle agent")
    assert job(master_proc, job_id)["state"] == "queued"
    ops.post(f"{master_proc.url}/api/v1/nodes/{node['id']}/undrain", timeout=10).raise_for_status()
    assert wait_final(master_proc, job_id)["state"] == "succeeded"


def test_agent_registers_again_when_the_master_forgets_it(master_proc: MasterProcess,
                                                          agent: AgentProcess) -> None:
    ops = master_proc.session()
    [node] = ops.get(master_proc.url + "/api/v1/nodes", timeout=10).json()["nodes"]
    ops.delete(f"{master_proc.url}/api/v1/nodes/{node['id']}", timeout=10).raise_for_status()
    again = wait_until(lambda: ops.get(master_proc.url + "/api/v1/nodes", timeout=10).json()["nodes"],
                       15, "the agent to register again")
    assert again[0]["name"] == node["name"] and again[0]["id"] != node["id"]
    assert "registering again" in agent.output()


def test_worker_endpoints_answer_with_the_seed_shapes(master_proc: MasterProcess,
                                                      agent: AgentProcess) -> None:
    health = requests.get(agent.url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    ready = requests.get(agent.url + "/ready", timeout=5).json()
    assert ready["status"] == "ready" and set(ready) == {"status", "checks", "timestamp"}
    assert ready["checks"]["ffmpeg"] == "available" and ready["checks"]["master"] == "reachable"
    disk = ready["checks"]["disk_space"]
    assert disk.startswith("ok: ") and "MB available" in disk
    metrics = requests.get(agent.url + "/metrics", timeout=5).text
    for name in ("worker_heartbeat_failures_total", "worker_disk_usage_percent", "worker_active_jobs",
                 "worker_free_slots", "worker_results_spooled"):
        assert f"\n{name} " in metrics
    wrapper = requests.get(agent.url + "/wrapper/metrics", timeout=5).text
    for name in ("wrapper_jobs_total", "wrapper_jobs_success", "wrapper_jobs_failed",
                 "wrapper_platform_sla_met", "wrapper_platform_sla_failed"):
        assert f"\n{name} 0" in wrapper
    assert requests.get(agent.url + "/violations", timeout=5).json() == []
