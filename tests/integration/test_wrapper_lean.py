"""The wrapper's start-up: the workload starts before the heavy imports, and standbys.

A cold ``wrapper run`` reaches the workload's exec with only the modules Python loads at
start-up and the wrapper's own few (an audit hook records ``sys.modules`` at the spawn);
a standby wrapper, handed its call by a pool as the agent does, records what a cold one
records, in its own session, cancelable, outliving the process that handed it the call;
one whose owner dies before a call exits without a trace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from ffrtmp import config, layout
from ffrtmp.agent.standby import StandbyPool
from ffrtmp.defaults import WORKER_DEFAULTS
from ffrtmp.wrapper import cgroups, jobdir, procinfo, run
from ffrtmp.wrapper.cmdline import PREFIX, WrapperCall
from tests.helpers import wait_until
from tests.integration.test_wrapper import TIMEOUT, Harness, run_call, wr

__all__ = ["wr"]  # the fixture, shared with test_wrapper

# Nothing of these may be imported before the workload is spawned.
HEAVY = {"ffrtmp.cli", "ffrtmp.cli.main", "ffrtmp.config", "ffrtmp.settings", "argparse",
         "logging", "logging.handlers", "inspect", "dataclasses", "subprocess", "pathlib",
         "tempfile", "typing", "json", "re", "ffrtmp.logs", "ffrtmp.layout", "ffrtmp.files"}

# ``python -m ffrtmp …`` with an audit hook that writes sys.modules at the first spawn.
BOOT = textwrap.dedent("""
    import sys, runpy
    before = set(sys.modules)
    modules_file = sys.argv[1]
    def hook(event, args):
        if event in ("os.posix_spawn", "subprocess.Popen") and not hook.seen:
            hook.seen = True
            with open(modules_file, "w") as out:
                out.write("\\n".join(sorted(set(sys.modules) - before)))
    hook.seen = False
    sys.addaudithook(hook)
    sys.argv = ["ffrtmp", *sys.argv[2:]]
    runpy.run_module("ffrtmp", run_name="__main__", alter_sys=True)
""")
RESULT_FIELDS = {"job_id", "attempt", "pid", "mode", "start_time", "end_time", "runtime_s",
                 "exit_code", "signal", "platform_sla", "reason", "intent", "cgroup", "limits",
                 "canceled", "progress_end"}


def test_the_workload_starts_before_the_heavy_imports(wr: Harness) -> None:
    modules = wr.tmp / "modules.txt"
    call = run_call("lean", "sh", "-c", "echo started", state_dir=str(wr.state))
    done = subprocess.run([sys.executable, "-c", BOOT, str(modules), *call.argv()[3:]],
                          env=wr.env, cwd=wr.tmp, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    at_spawn = set(modules.read_text().split())
    assert "ffrtmp.wrapper.run" in at_spawn  # the hook saw the wrapper's own spawn
    assert not at_spawn & HEAVY, sorted(at_spawn & HEAVY)
    assert (wr.job_dir("lean") / "output.log").read_text() == "started\n"
    result = wr.result("lean")
    assert set(result) == RESULT_FIELDS and result["reason"] == "completed_successfully"
    assert "sla=COMPLIANT" in wr.summary("lean")  # logging came after, and still logged


def test_the_early_path_uses_the_shared_declarations() -> None:
    """What the pre-spawn modules spell out themselves, to avoid importing its owner."""
    names = layout.JobDir(Path("/j"))
    spelled = (jobdir.RESULT_JSON, jobdir.WRAPPER_JSON, jobdir.OUTPUT_LOG, jobdir.JOBS,
               jobdir.WRAPPER)
    state = layout.StateDir(Path("/s"))
    assert spelled == (names.result_json.name, names.wrapper_json.name, names.output_log.name,
                       state.jobs.name, state.wrapper.path.name)
    assert state.job("j", 2).path.name == "j.2"
    assert run._AGENT_LEAF == cgroups.AGENT_LEAF
    for name, default in WORKER_DEFAULTS.items():
        assert config.BY_NAME[name].default == default


def _standby_owner(tmp: Path, env: dict[str, str], call: WrapperCall | None) -> subprocess.Popen[str]:
    """Another process playing the agent: fills a pool of one, hands ``call`` to it (if
    any), prints the standby's pid, then waits to be killed."""
    message = json.dumps(call.words() if call else None)
    code = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from ffrtmp.agent.standby import StandbyPool
        from ffrtmp.wrapper.cmdline import WrapperCall, parse
        pool = StandbyPool(1)
        pool.fill()
        standby = pool._idle[0]
        words = json.loads({message!r})
        if words:
            call = parse(words[0], words[1:])
            assert pool.hand_off(call, Path(call.job_dir) / "wrapper.out") is standby
        print(standby.pid, flush=True)
        time.sleep(600)
    """)
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp, text=True,
                            stdout=subprocess.PIPE, start_new_session=True)


def _owner_pid(owner: subprocess.Popen[str]) -> int:
    assert owner.stdout is not None
    return int(owner.stdout.readline())


def _gone(pid: int) -> bool:
    return not procinfo.alive(pid)


def test_a_standby_whose_owner_dies_exits_without_a_trace(wr: Harness) -> None:
    owner = _standby_owner(wr.tmp, wr.env, None)
    wr.procs.append(owner)
    standby = _owner_pid(owner)
    assert os.getsid(standby) == standby  # its own session from the start
    os.killpg(owner.pid, signal.SIGKILL)
    owner.wait(TIMEOUT)
    wait_until(lambda: _gone(standby), TIMEOUT, "the standby to exit at end of input")
    assert not wr.state.exists() and not wr.logs.exists()


def test_a_standby_outlives_its_owner_once_it_has_a_job(wr: Harness) -> None:
    job_dir = wr.job_dir("orphan")
    job_dir.mkdir(parents=True)
    marker = wr.tmp / "go"
    call = run_call("orphan", "sh", "-c", f"while [ ! -e {marker} ]; do sleep 0.05; done",
                    job_dir=str(job_dir), state_dir=str(wr.state), log_dir=str(wr.logs))
    owner = _standby_owner(wr.tmp, wr.env, call)
    wr.procs.append(owner)
    standby = _owner_pid(owner)
    info = wr.wrapper_json("orphan")
    assert info["wrapper_pid"] == standby and os.getsid(info["pid"]) == info["pid"]
    os.killpg(owner.pid, signal.SIGKILL)  # the agent dies, kill -9, with its whole group
    owner.wait(TIMEOUT)
    assert procinfo.alive(standby) and procinfo.alive(info["pid"])
    marker.touch()
    wait_until((job_dir / "result.json").exists, TIMEOUT, "the orphaned job's result")
    result = wr.result("orphan")
    assert set(result) == RESULT_FIELDS and result["reason"] == "completed_successfully"
    # result.json comes first (it is what wakes an agent); the JOB line is written after it
    wait_until(lambda: "JOB orphan |" in (job_dir / "wrapper.out").read_text(), TIMEOUT,
               "the orphaned wrapper's JOB line")


def test_a_standby_runs_a_call_as_a_cold_wrapper_does(wr: Harness) -> None:
    pool = StandbyPool(1)
    pool.fill()
    try:
        results = {}
        for name, handed in (("cold", False), ("warm", True)):
            job_dir = wr.job_dir(name)
            job_dir.mkdir(parents=True)
            call = run_call(name, "sh", "-c", "echo out; echo err >&2; exit 3",
                            job_dir=str(job_dir), state_dir=str(wr.state), log_dir=str(wr.logs),
                            intent="same")
            if handed:
                proc = pool.hand_off(call, job_dir / "wrapper.out")
                assert proc is not None
                assert proc.wait(TIMEOUT) == 3
            else:
                assert wr.run(call).returncode == 3
            results[name] = wr.result(name)
            assert (job_dir / "output.log").read_text() == "out\nerr\n"
        cold, warm = results["cold"], results["warm"]
        differ = {"job_id", "pid", "start_time", "end_time", "runtime_s"}
        assert {k: v for k, v in cold.items() if k not in differ} == {
            k: v for k, v in warm.items() if k not in differ}
        assert "JOB warm |" in (wr.job_dir("warm") / "wrapper.out").read_text()
        assert "reason=workload_failed" in wr.summary("warm")
        assert wr.counters()["jobs_total"] == 2
    finally:
        pool.close()


def test_a_standby_is_canceled_by_sigusr1(wr: Harness) -> None:
    pool = StandbyPool(1)
    pool.fill()
    try:
        job_dir = wr.job_dir("cx")
        job_dir.mkdir(parents=True)
        call = run_call("cx", "sleep", "30", job_dir=str(job_dir), state_dir=str(wr.state),
                        log_dir=str(wr.logs), cancel_grace_s=5.0)
        proc = pool.hand_off(call, job_dir / "wrapper.out")
        assert proc is not None
        info = wr.wrapper_json("cx")
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            os.kill(info["wrapper_pid"], sig)
        proc.wait(TIMEOUT)
        result = wr.result("cx")
        assert result["canceled"] is True and result["reason"] == "canceled"
        assert result["signal"] == "SIGTERM"
    finally:
        pool.close()


def test_a_standby_refuses_what_is_not_a_call(tmp_path: Path) -> None:
    argv = [sys.executable, *PREFIX, "standby"]
    for line in (b"", b"\n", b'{"argv": ["rm", "-rf"], "out": "/x"}\n', b"not json\n"):
        done = subprocess.run(argv, input=line, capture_output=True, timeout=TIMEOUT,
                              check=False, cwd=tmp_path)
        assert done.returncode == (0 if not line.strip() else 2), (line, done.stderr)
    assert list(tmp_path.iterdir()) == []
