"""RTMP push and pull through a real nginx with the RTMP module, read back with ffprobe."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AgentProcess, MasterProcess, stop_process
from tests.helpers import free_port, wait_until
from tests.integration.test_agent_jobs import job, media, probe, submit, video, wait_final

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record all;
            record_path {dir}/rec;
            record_unique off;
        }}
    }}
}}
"""


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[str]:
    """An nginx-rtmp server on a free loopback port; yields its rtmp://…/live base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.fail("nginx with the RTMP module is required (Debian: nginx libnginx-mod-rtmp); "
                    "tools/bootstrap.sh --test installs it")
    directory = tmp_path / "nginx"
    (directory / "rec").mkdir(parents=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(module=RTMP_MODULE, dir=directory, port=port))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, 15, "nginx-rtmp to listen")
        assert proc.poll() is None, (directory / "error.log").read_text()
        yield f"rtmp://127.0.0.1:{port}/live"
    finally:
        stop_process(proc)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_rtmp_push_and_pull_through_nginx(master_proc: MasterProcess, agent: AgentProcess,
                                          rtmp_server: str, tmp_path: Path) -> None:
    push = submit(master_proc, {"input": "testsrc://?duration=14&size=320x240&rate=25",
                                "outputs": [{"url": f"{rtmp_server}/cam1", "preset": "h264-480p",
                                             "size": "320x240", "encoder_preset": "ultrafast"}],
                                "queue": "live"})
    wait_until(lambda: (job(master_proc, push).get("progress") or {}).get("out_time_s", 0) > 1, 30,
               "the push to be streaming")
    root = media(master_proc)
    pull = submit(master_proc, {"input": f"{rtmp_server}/cam1",
                                "outputs": [{"url": f"file://{root}/pulled.mp4", "preset": "copy"}],
                                "duration_s": 3, "queue": "live"})
    assert wait_final(master_proc, pull, timeout=60)["state"] == "succeeded"
    pulled = probe(root / "pulled.mp4")
    assert video(pulled)["codec_name"] == "h264" and video(pulled)["width"] == 320
    assert 2.0 <= float(pulled["format"]["duration"]) <= 4.0
    assert wait_final(master_proc, push, timeout=60)["state"] == "succeeded"
    recorded = probe(tmp_path / "nginx" / "rec" / "cam1.flv")
    assert {s["codec_name"] for s in recorded["streams"]} == {"h264", "aac"}
    assert abs(float(recorded["format"]["duration"]) - 14) < 1.5
