"""``jobs watch`` and ``jobs show`` on a real farm: a gunicorn master, an agent, FFmpeg encoding.

The master runs with the production heartbeat interval (5 s), so a watch that moves every
second proves the agent's progress reports between heartbeats, not the heartbeats. The CLI
runs as its own process with its stderr or stdout piped (not a terminal: one line per
change), and every line is timed as it arrives.
"""

from __future__ import annotations

import itertools
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from tests.conftest import (
    OPERATOR_TOKEN,
    AgentProcess,
    MasterProcess,
    kill_workloads,
    master_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until

REALTIME = "testsrc://?duration={s}&size=320x240&rate=25&realtime=1"
PERCENT = re.compile(r"\]\s+(\d+\.\d)% ")


@dataclass
class Farm:
    master: MasterProcess
    agent: AgentProcess
    media: Path
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.headers.update({"Authorization": f"Bearer {OPERATOR_TOKEN}", "Connection": "close"})

    def submit(self, seconds: int, name: str, input_url: str | None = None) -> str:
        body = {"input": input_url or REALTIME.format(s=seconds),
                "outputs": [{"url": f"file://{self.media}/out/{name}.mp4", "preset": "h264-480p"}]}
        reply = self.session.post(self.master.url + "/api/v1/jobs", json=body, timeout=10)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["job"]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.session.get(f"{self.master.url}/api/v1/jobs/{job_id}", timeout=10)
        reply.raise_for_status()
        job: dict[str, Any] = reply.json()["job"]
        return job

    def cli(self, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_")}
        env.update(FFRTMP_MASTER_URL=self.master.url, FFRTMP_API_TOKEN=OPERATOR_TOKEN,
                   FFRTMP_CONFIG=str(self.media.parent / "no-cli.env"), PYTHONUNBUFFERED="1")
        streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
        return subprocess.Popen([sys.executable, "-m", "ffrtmp", *argv], env=env, text=True, **streams)


class Timed:
    """Every line of a stream, with the monotonic time it arrived."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("watch")
    master = start_master(tmp, master_env(tmp, FFRTMP_HEARTBEAT_INTERVAL="5"))
    agent = start_agent(tmp, master, "watch-w1", FFRTMP_SLOTS="2")
    media = Path(master.env["FFRTMP_MEDIA_ROOTS"])
    (media / "out").mkdir(exist_ok=True)
    try:
        yield Farm(master, agent, media)
    finally:
        stop_process(agent.proc)
        kill_workloads(agent.state_dir)
        stop_process(master.proc)


def test_watch_moves_every_second_and_ends_at_100_percent(farm: Farm) -> None:
    job_id = farm.submit(6, "watched")
    watch = farm.cli("jobs", "watch", job_id)
    # One reader per stream: communicate() would read stderr too, and take lines from Timed.
    err, shown = Timed(watch.stderr), Timed(watch.stdout)  # type: ignore[arg-type]
    watch.wait(timeout=90)
    err.thread.join(5)
    shown.thread.join(5)
    out = shown.text() + "\n"
    assert watch.returncode == 0, err.text()
    running = [(at, line) for at, line in err.lines if line.startswith(f"{job_id} running")
               and PERCENT.search(line)]
    assert len(running) >= 4, err.text()
    span = running[-1][0] - running[0][0]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(running)]
    assert len(running) >= span, f"fewer than one update a second: {err.text()}"
    assert max(gaps) <= 1.6, f"a gap of {max(gaps):.2f}s: {err.text()}"
    percents = [float(PERCENT.search(line).group(1)) for _, line in running]  # type: ignore[union-attr]
    assert percents == sorted(percents) and len(set(percents)) >= 3, percents
    changes = [at for (at, _), p, q in zip(running[1:], percents, percents[1:], strict=False) if q > p]
    assert changes and max(b - a for a, b in zip([running[0][0], *changes], changes, strict=False)) <= 2.5, \
        f"the percent stood still longer than between two reports: {err.text()}"
    for word in ("elapsed 0:", "fps ", "speed ", "on watch-w1"):
        assert all(word in line for _, line in running), (word, err.text())
    moving = [line for (_, line), p in zip(running, percents, strict=True) if p > 0]
    assert all(re.search(r"  eta \d+:\d\d  ", line) for line in moving), err.text()
    final = err.lines[-1][1]
    assert final.startswith(f"{job_id} succeeded") and " 100.0% " in final and "exit 0" in final, final
    assert out.startswith(f"job {job_id}: succeeded\n")
    assert "  outcome   succeeded: exit 0, platform SLA met, runtime " in out


def test_show_prints_the_outcome_the_outputs_and_the_attempts(farm: Farm) -> None:
    job_id = farm.submit(1, "shown", "testsrc://?duration=1&size=320x240&rate=25")
    wait_until(lambda: farm.job(job_id)["state"] in ("succeeded", "failed"), 60, "the job to end")
    shown = farm.cli("jobs", "show", job_id)
    out, err = shown.communicate(timeout=30)
    assert shown.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == f"job {job_id}: succeeded"
    node_id = farm.job(job_id)["node_id"]
    assert f"  node      watch-w1 ({node_id})" in lines
    assert "  requires  libx264, aac" in lines or any(line.startswith("  requires  ") for line in lines)
    outcome = next(line for line in lines if line.startswith("  outcome   "))
    assert re.fullmatch(r"  outcome   succeeded: exit 0, platform SLA met, runtime \d+\.\d s "
                        rf"\(attempt 1 on watch-w1 \({node_id}\)\)", outcome), outcome
    size = (farm.media / "out" / "shown.mp4").stat().st_size
    delivered = next(line for line in lines if line.startswith("  delivered "))
    assert f"/out/shown.mp4  {size / 1000:.1f} kB" in delivered or f"{size} B" in delivered, delivered
    header = lines.index("  attempts:") + 1
    assert lines[header].split() == ["ATTEMPT", "NODE", "STATE", "STARTED", "ENDED", "RUNTIME", "EXIT", "SLA"]
    assert lines[header + 1].split()[:3] == ["1", "watch-w1", "succeeded"]
    assert lines[header + 1].split()[-2:] == ["0", "met"]


def test_show_of_a_failed_encode_prints_its_reason_and_exit_code(farm: Farm) -> None:
    (farm.media / "garbage.mp4").write_bytes(b"this is not a video\n" * 100)
    job_id = farm.submit(1, "failed", f"file://{farm.media}/garbage.mp4")
    wait_until(lambda: farm.job(job_id)["state"] in ("succeeded", "failed"), 60, "the job to end")
    result = farm.job(job_id)["attempts"][-1]["result"]
    shown = farm.cli("jobs", "show", job_id)
    out, err = shown.communicate(timeout=30)
    assert shown.returncode == 0, err
    assert out.startswith(f"job {job_id}: failed\n")
    assert f"  outcome   failed: exit {result['exit_code']}, platform SLA met" in out
    assert result["exit_code"] not in (0, None)
    assert f"  reason    {result['reason']}\n" in out and result["reason"]


def test_watch_without_an_id_follows_every_running_job_until_ctrl_c(farm: Farm) -> None:
    watch = farm.cli("jobs", "watch")
    out = Timed(watch.stdout)  # type: ignore[arg-type]
    job_id = farm.submit(4, "table")
    try:
        mine = lambda: [(at, line) for at, line in out.lines if f" {job_id} " in line]  # noqa: E731
        wait_until(lambda: any(PERCENT.search(line) for _, line in mine()), 60, "the job's figures")
        wait_until(lambda: any(f"{job_id} succeeded" in line for _, line in mine()), 60,
                   "the line of the job that ended")
    finally:
        watch.send_signal(signal.SIGINT)
        status = watch.wait(10)
    assert status == 0, watch.stderr.read() if watch.stderr else ""
    lines = [line for _, line in mine()]
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    percents = [float(m.group(1)) for line in lines if (m := PERCENT.search(line))]
    assert len(set(percents)) >= 3 and percents == sorted(percents), lines
    assert "100.0%" in lines[-1] and "exit 0" in lines[-1], lines


def test_watch_without_an_id_redraws_the_table_in_place_on_a_terminal(farm: Farm) -> None:
    terminal, side = pty.openpty()
    watch = farm.cli("jobs", "watch", stdout=side)
    os.close(side)
    seen: list[str] = []
    reader = threading.Thread(target=_drain, args=(terminal, seen), daemon=True)
    reader.start()
    job_id = farm.submit(3, "terminal")
    try:
        wait_until(lambda: len(re.findall(rf"{job_id} +running .*%", "".join(seen))) >= 2, 60,
                   "two drawings of the running job")
    finally:
        watch.send_signal(signal.SIGINT)
        status = watch.wait(10)
    assert status == 0
    text = "".join(seen)
    assert re.search(r"\x1b\[\d+F\x1b\[J", text), "the table is drawn over the previous one"
    assert re.search(r"ID +STATE +NODE +PROGRESS +FPS +SPEED +ETA +UPDATED", text), text
    assert "job(s) assigned or running" in text
    wait_until(lambda: farm.job(job_id)["state"] == "succeeded", 60, "the job to end")


def _drain(fd: int, into: list[str]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other side closed
            return
        if not chunk:
            return
        into.append(chunk.decode(errors="replace"))
