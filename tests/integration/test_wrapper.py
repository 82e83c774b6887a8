"""The wrapper with real processes: run, attach, signals, cancel, limits, ffmpeg.

Every wait is on a condition with a deadline; every subprocess has a timeout; teardown kills
whatever a test left running (wrappers and workloads found through wrapper.json, plus the
processes the test started itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ffrtmp.layout import StateDir
from ffrtmp.wrapper import cgroups, counters, procinfo
from ffrtmp.wrapper.cmdline import Mode, WrapperCall, entry
from tests.helpers import wait_until

SUMMARY_RE = re.compile(r"JOB \S+.*sla=(COMPLIANT|VIOLATION).*reason=\S+.*runtime=[0-9.]+s"
                        r".*exit=[0-9]+")
TIMEOUT = 20


def run_call(job_id: str, *command: str, **options: Any) -> WrapperCall:
    return WrapperCall(mode="run", job_id=job_id, command=command, **options)


def attach_call(pid: int, job_id: str, **options: Any) -> WrapperCall:
    return WrapperCall(mode="attach", job_id=job_id, pid=pid, **options)


class Harness:
    """Starts wrappers against a private state and log dir, and cleans up after them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.logs = tmp_path / "logs"
        self.env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
                    "FFRTMP_STATE_DIR": str(self.state), "FFRTMP_LOG_DIR": str(self.logs)}
        self.procs: list[subprocess.Popen[str]] = []
        self.pids: list[tuple[int, int | None]] = []

    # -- starting things ------------------------------------------------------------------

    def _argv(self, sub: Mode, args: tuple[str | WrapperCall, ...]) -> list[str]:
        """A call as the agent builds it; raw words only where a test is about parsing them."""
        if len(args) == 1 and isinstance(args[0], WrapperCall):
            return args[0].argv()
        return [*entry(sub), *(str(arg) for arg in args)]

    def run(self, *args: str | WrapperCall,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._argv("run", args), env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def attach(self, *args: str | WrapperCall,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._argv("attach", args), env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, call: WrapperCall) -> subprocess.Popen[str]:
        proc = subprocess.Popen(call.argv(), env=self.env, cwd=self.tmp, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def background(self, *argv: str) -> subprocess.Popen[str]:
        """A process of the test's own, in its own session, as a workload would be."""
        proc = subprocess.Popen(list(argv), start_new_session=True, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    # -- reading what they wrote -----------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return StateDir(self.state).job(job_id, 1).path

    def wrapper_json(self, job_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        path = self.job_dir(job_id) / "wrapper.json"
        wait_until(path.exists, timeout, f"{path}")
        data = json.loads(path.read_text())
        self.pids += [(data["pid"], data["pid_start_ticks"]),
                      (data["wrapper_pid"], data["wrapper_start_ticks"])]
        return data

    def result(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.job_dir(job_id) / "result.json").read_text())

    def log_text(self) -> str:
        path = self.logs / "wrapper" / "wrapper.log"
        return path.read_text() if path.exists() else ""

    def summary(self, job_id: str) -> str:
        lines = [line for line in self.log_text().splitlines() if f"JOB {job_id} |" in line]
        assert len(lines) == 1, self.log_text()
        return lines[0]

    def counters(self) -> dict[str, int]:
        return counters.read_counters(self.state)

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        for path in StateDir(self.state).jobs.glob("*/wrapper.json"):
            data = json.loads(path.read_text())
            self.pids += [(data["pid"], data["pid_start_ticks"]),
                          (data["wrapper_pid"], data["wrapper_start_ticks"])]
        for pid, ticks in self.pids:
            if not procinfo.alive(pid, ticks):
                continue
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=TIMEOUT)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def wr(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.cleanup()


def running(pid: int, ticks: int) -> bool:
    return procinfo.alive(pid, ticks)


# --- run --------------------------------------------------------------------------------


def test_basic_run(wr: Harness) -> None:
    done = wr.run(run_call("basic", "sleep", "0.2", intent="smoke"))
    assert done.returncode == 0, done.stderr
    res = wr.result("basic")
    info = wr.wrapper_json("basic")
    assert res["job_id"] == "basic"
    assert res["attempt"] == 1
    assert res["mode"] == "run"
    assert res["exit_code"] == 0
    assert res["signal"] is None
    assert res["platform_sla"] is True
    assert res["reason"] == "completed_successfully"
    assert res["intent"] == "smoke"
    assert res["canceled"] is False
    assert res["progress_end"] is None
    assert res["cgroup"] is None
    assert res["limits"] == {"cpu_max": None, "memory_max": None, "applied": False}
    assert 0.2 <= res["runtime_s"] < 10
    assert res["pid"] == info["pid"]
    assert res["start_time"].endswith("Z") and res["end_time"] > res["start_time"]
    assert info["mode"] == "run" and info["argv"] == ["sleep", "0.2"]
    assert info["wrapper_pid"] > 0 and isinstance(info["wrapper_start_ticks"], int)
    assert isinstance(info["pid_start_ticks"], int)
    assert info["detached"] is False
    line = wr.summary("basic")
    assert SUMMARY_RE.search(line)
    assert "| intent=smoke | sla=COMPLIANT | reason=completed_successfully |" in line
    assert f"| exit=0 | pid={info['pid']}" in line
    assert "JOB basic |" in done.stdout  # the summary also goes to stdout
    assert wr.counters() == {"jobs_total": 1, "jobs_success": 1, "jobs_failed": 0,
                             "platform_sla_met": 1, "platform_sla_failed": 0}


def test_exit_code_propagates(wr: Harness) -> None:
    done = wr.run(run_call("exit42", "sh", "-c", "exit 42"))
    assert done.returncode == 42
    res = wr.result("exit42")
    assert (res["exit_code"], res["reason"], res["platform_sla"]) == (42, "workload_failed", True)
    line = wr.summary("exit42")
    assert "sla=COMPLIANT" in line and "exit=42" in line
    assert wr.counters()["jobs_failed"] == 1
    assert wr.counters()["platform_sla_met"] == 1


def test_signal_exit(wr: Harness) -> None:
    done = wr.run(run_call("sig", "sh", "-c", "kill -9 $$"))
    assert done.returncode == 137
    res = wr.result("sig")
    assert (res["exit_code"], res["signal"], res["reason"], res["platform_sla"]) == (
        None, "SIGKILL", "workload_signaled", True)
    assert "exit=137" in wr.summary("sig")


def test_command_not_found(wr: Harness) -> None:
    for job in ("missing-1", "missing-2"):
        done = wr.run(run_call(job, "ffrtmp-no-such-command", "-x"))
        assert done.returncode == 127
        res = wr.result(job)
        assert (res["reason"], res["platform_sla"], res["pid"], res["exit_code"]) == (
            "start_failed", False, None, 127)
        assert "sla=VIOLATION" in wr.summary(job)
        assert "cannot start" in (wr.job_dir(job) / "output.log").read_text()
    ring = counters.read_violations(wr.state)
    assert [(v["job_id"], v["reason"]) for v in ring] == [
        ("missing-2", "start_failed"), ("missing-1", "start_failed")]
    assert wr.counters()["platform_sla_failed"] == 2


def test_usage_errors_start_nothing(wr: Harness) -> None:
    assert wr.run("--job-id", "u1", "sleep", "1").returncode == 2  # no "--"
    assert wr.run("--job-id", "u2", "--").returncode == 2
    assert wr.run("--job-id", "../up", "--", "true").returncode == 2
    assert wr.run("--job-id", "u3", "--cpu-max", "half", "--", "true").returncode == 2
    assert not StateDir(wr.state).jobs.exists()


def test_result_is_immutable(wr: Harness) -> None:
    assert wr.run(run_call("once", "true")).returncode == 0
    before = (wr.job_dir("once") / "result.json").read_bytes()
    again = wr.run(run_call("once", "sh", "-c", "exit 3"))
    assert again.returncode == 2
    assert "exists" in again.stdout
    assert (wr.job_dir("once") / "result.json").read_bytes() == before
    assert wr.counters()["jobs_total"] == 1


def test_three_concurrent_runs(wr: Harness) -> None:
    procs = [wr.start(run_call(f"c{i}", "sleep", "0.5")) for i in range(3)]
    for proc in procs:
        assert proc.wait(timeout=TIMEOUT) == 0
    for i in range(3):
        assert wr.result(f"c{i}")["reason"] == "completed_successfully"
    assert wr.counters()["jobs_total"] == 3
    assert wr.counters()["jobs_success"] == 3


# --- signals to the wrapper never reach the workload ------------------------------------


def test_workload_survives_kill_9_of_the_wrapper(wr: Harness) -> None:
    proc = wr.start(run_call("k9", "sleep", "2"))
    info = wr.wrapper_json("k9")
    proc.kill()
    assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
    assert running(info["pid"], info["pid_start_ticks"])
    assert not (wr.job_dir("k9") / "result.json").exists()

    done = wr.attach(attach_call(info["pid"], "k9", start_ticks=info["pid_start_ticks"]))
    assert done.returncode == 0, done.stderr
    res = wr.result("k9")
    assert (res["mode"], res["reason"], res["platform_sla"], res["exit_code"]) == (
        "attach", "observed_to_completion", True, None)
    assert res["pid"] == info["pid"]
    assert res["start_time"] == info["started_at"]  # the real start, from the first wrapper
    assert res["runtime_s"] >= 1.5
    assert wr.wrapper_json("k9")["mode"] == "attach"
    assert SUMMARY_RE.search(wr.summary("k9"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_detach(wr: Harness, sig: signal.Signals) -> None:
    proc = wr.start(run_call("det", "sleep", "30"))
    info = wr.wrapper_json("det")
    proc.send_signal(sig)
    assert proc.wait(timeout=TIMEOUT) == 0
    assert running(info["pid"], info["pid_start_ticks"])
    after = json.loads((wr.job_dir("det") / "wrapper.json").read_text())
    assert after["detached"] is True and after["detached_by"] == sig.name
    assert not (wr.job_dir("det") / "result.json").exists()
    assert "detached; workload continues" in wr.log_text()
    assert wr.counters()["jobs_total"] == 0
    again = wr.run(run_call("det", "true"))  # never a second workload for a job dir
    assert again.returncode == 2 and "still running" in again.stdout


def test_sighup_is_ignored(wr: Harness) -> None:
    go = wr.tmp / "go"
    proc = wr.start(run_call("hup", "sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"))
    info = wr.wrapper_json("hup")
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP ignored" in wr.log_text(), TIMEOUT, "the SIGHUP log line")
    assert proc.poll() is None
    assert running(info["pid"], info["pid_start_ticks"])
    go.touch()
    assert proc.wait(timeout=TIMEOUT) == 0
    assert wr.result("hup")["reason"] == "completed_successfully"


# --- cancel: the one path that signals a workload ---------------------------------------


def test_cancel_sends_sigterm(wr: Harness) -> None:
    proc = wr.start(run_call("cancel", "sleep", "60"))
    wr.wrapper_json("cancel")
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=TIMEOUT) == 143
    res = wr.result("cancel")
    assert (res["reason"], res["canceled"], res["signal"], res["platform_sla"]) == (
        "canceled", True, "SIGTERM", True)
    assert json.loads((wr.job_dir("cancel") / "wrapper.json").read_text())["cancel_requested"]
    assert "reason=canceled" in wr.summary("cancel")


def test_cancel_escalates_to_sigkill(wr: Harness) -> None:
    ready = wr.tmp / "ready"
    proc = wr.start(run_call("stubborn", "sh", "-c", f'trap "" TERM; : > {ready}; exec sleep 60',
                             cancel_grace_s=0.5))
    wr.wrapper_json("stubborn")
    wait_until(ready.exists, TIMEOUT, "the workload to trap SIGTERM")
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=TIMEOUT) == 137
    res = wr.result("stubborn")
    assert (res["reason"], res["canceled"], res["signal"]) == ("canceled", True, "SIGKILL")
    assert "SIGKILL" in wr.log_text()


# --- attach -----------------------------------------------------------------------------


def test_attach_to_a_background_process(wr: Harness) -> None:
    sleeper = wr.background("sleep", "1")
    done = wr.attach(attach_call(sleeper.pid, "adopt", intent="adopted"))
    assert done.returncode == 0, done.stderr
    res = wr.result("adopt")
    assert (res["mode"], res["reason"], res["platform_sla"], res["exit_code"]) == (
        "attach", "observed_to_completion", True, None)
    assert res["pid"] == sleeper.pid and res["intent"] == "adopted"
    info = wr.wrapper_json("adopt")
    assert info["mode"] == "attach" and info["argv"] == ["sleep", "1"]
    line = wr.summary("adopt")
    assert SUMMARY_RE.search(line) and "exit=0" in line
    assert wr.counters()["jobs_total"] == 1


def test_attach_to_a_missing_pid(wr: Harness) -> None:
    done = wr.attach(attach_call(99999999, "ghost"))
    assert done.returncode == 1
    assert "process 99999999 does not exist" in done.stderr
    assert not wr.state.exists()


def test_attach_to_an_already_reaped_pid(wr: Harness) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=TIMEOUT)
    done = wr.attach(attach_call(gone.pid, "reaped"))
    assert done.returncode == 1
    assert f"process {gone.pid} does not exist" in done.stderr
    assert not wr.state.exists()


def test_attach_refuses_a_reused_pid(wr: Harness) -> None:
    sleeper = wr.background("sleep", "30")
    ticks = wait_until(lambda: procinfo.start_ticks(sleeper.pid), TIMEOUT, "start ticks")
    done = wr.attach(attach_call(sleeper.pid, "reused", start_ticks=ticks + 1))
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def test_attach_detaches_and_cancels(wr: Harness) -> None:
    sleeper = wr.background("sleep", "60")
    ticks = wait_until(lambda: procinfo.start_ticks(sleeper.pid), TIMEOUT, "start ticks")
    first = wr.start(attach_call(sleeper.pid, "adopt2"))
    wr.wrapper_json("adopt2")
    twice = wr.attach(attach_call(sleeper.pid, "adopt2"))
    assert twice.returncode == 2 and "not attaching twice" in twice.stdout
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=TIMEOUT) == 0
    assert running(sleeper.pid, ticks)

    second = wr.start(attach_call(sleeper.pid, "adopt2"))
    wait_until(lambda: wr.wrapper_json("adopt2")["wrapper_pid"] == second.pid, TIMEOUT,
               "the second attach to write wrapper.json")
    second.send_signal(signal.SIGUSR1)
    assert second.wait(timeout=TIMEOUT) == 0
    assert sleeper.wait(timeout=TIMEOUT) == -signal.SIGTERM
    res = wr.result("adopt2")
    assert (res["mode"], res["reason"], res["canceled"]) == ("attach", "canceled", True)


# --- ffmpeg, limits, isolation ----------------------------------------------------------


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_progress_end(wr: Harness) -> None:
    progress = wr.job_dir("ff") / "progress.txt"
    done = wr.run(run_call("ff", "ffmpeg", "-hide_banner", "-nostdin", "-f", "lavfi",
                  "-i", "testsrc2=duration=1:size=320x240:rate=25",
                  "-progress", str(progress), "-f", "null", "-", intent="testsrc"),
                  timeout=60)
    assert done.returncode == 0, (wr.job_dir("ff") / "output.log").read_text()
    res = wr.result("ff")
    assert res["progress_end"] is True and res["reason"] == "completed_successfully"
    assert "progress=end" in progress.read_text()
    assert "testsrc2" in (wr.job_dir("ff") / "output.log").read_text()


def test_requested_limits_not_applied(wr: Harness) -> None:
    if cgroups.delegated_parent() is not None:
        pytest.skip("cgroup v2 is delegated here, so the limits would be applied")
    done = wr.run(run_call("lim", "sh", "-c", "exit 0", cpu_max="50000 100000",
                           memory_max=268435456))
    assert done.returncode == 0
    res = wr.result("lim")
    assert (res["platform_sla"], res["reason"], res["exit_code"], res["cgroup"]) == (
        False, "limits_not_applied", 0, None)
    assert res["limits"] == {"cpu_max": "50000 100000", "memory_max": 268435456,
                             "applied": False}
    assert "sla=VIOLATION" in wr.summary("lim")
    assert any("cgroup:" in line and "job=lim" in line and "ERROR" in line
               for line in wr.log_text().splitlines())
    assert counters.read_violations(wr.state)[0]["reason"] == "limits_not_applied"


def test_wrapper_imports_no_http_stack(tmp_path: Path) -> None:
    code = ("import sys, ffrtmp.wrapper.run, ffrtmp.wrapper.attach; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'flask', 'requests', 'gunicorn', 'urllib3', 'prometheus_client', 'psutil'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "[]"


# --- cgroup layout, on a fake cgroupfs tree (no real cgroup is touched) ------------------


def fake_cgroupfs(tmp_path: Path, own: str, controllers: str = "cpu memory io") -> tuple[
        Path, Path]:
    root = tmp_path / "cgroupfs"
    leaf = root / own.lstrip("/")
    leaf.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers)
    for directory in (leaf.parent, leaf):
        (directory / "cgroup.controllers").write_text(controllers)
        (directory / "cgroup.subtree_control").write_text("")
        (directory / "cgroup.procs").write_text("")
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(f"0::{own}\n")
    return root, self_cgroup


def test_cgroup_created_beside_the_agent_leaf(tmp_path: Path) -> None:
    root, self_cg = fake_cgroupfs(tmp_path, "/system.slice/ffrtmp-worker.service/agent")
    unit = root / "system.slice" / "ffrtmp-worker.service"
    assert cgroups.delegated_parent(root, self_cg) == unit
    job = cgroups.prepare("j1", 2, cpu_max="50000 100000", memory_max=1 << 28,
                          root=root, self_cgroup=self_cg)
    assert job == cgroups.JobCgroup(unit / "job-j1-2", True)
    assert (job.path / "cpu.max").read_text() == "50000 100000"
    assert (job.path / "memory.max").read_text() == str(1 << 28)
    assert (unit / "cgroup.subtree_control").read_text() == "+memory"  # last "+x" written
    home = cgroups.enter(job.path, root=root, self_cgroup=self_cg)
    assert home == unit / "agent"
    assert (job.path / "cgroup.procs").read_text() == str(os.getpid())


def test_cgroup_not_delegated(tmp_path: Path) -> None:
    root, self_cg = fake_cgroupfs(tmp_path, "/user.slice/session-1.scope")
    assert cgroups.delegated_parent(root, self_cg) is None
    assert cgroups.prepare("j", 1, cpu_max=None, memory_max=None, root=root,
                           self_cgroup=self_cg) == cgroups.JobCgroup(None, False)
    limited = cgroups.prepare("j", 1, cpu_max=None, memory_max=10, root=root,
                              self_cgroup=self_cg)
    assert limited.path is None and not limited.applied and "agent" in str(limited.problem)
    v1 = cgroups.prepare("j", 1, cpu_max="max", memory_max=None, root=tmp_path / "nowhere",
                         self_cgroup=self_cg)
    assert not v1.applied and "not mounted" in str(v1.problem)


def test_cgroup_missing_controller(tmp_path: Path) -> None:
    root, self_cg = fake_cgroupfs(tmp_path, "/ffrtmp-worker.service/agent", controllers="io")
    job = cgroups.prepare("j", 1, cpu_max="max 100000", memory_max=None, root=root,
                          self_cgroup=self_cg)
    assert job.path is not None and not job.applied
    assert "cpu" in str(job.problem)
