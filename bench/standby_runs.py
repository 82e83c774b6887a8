"""Wrapped runs the way the agent launches them: a standby wrapper, handed its call.

The agent keeps one started wrapper per free slot (``ffrtmp.agent.standby.StandbyPool``)
and refills the pool while the other slot encodes, so by the time a slot frees its standby
has long finished Python's start-up and its imports and is blocked reading its call. Here
the same pool is filled, the standby is waited for until it is blocked reading stdin (its
``/proc`` syscall or wait channel says so: a condition, not a guess), and only then is the
call handed over with ``StandbyPool.hand_off``, with the ``WrapperCall`` fields the agent's
``_spawn`` gives. A run's time goes from that hand-off (the moment the agent writes the call)
to the wrapper's ``result.json`` being there (written atomically: what wakes the agent and
frees its slot), and on to the wrapper's exit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import psutil
from tests.processes import kill_workloads

from bench.harness import LIVE, BenchError, stop
from ffrtmp.agent.jobs import wait_for_result
from ffrtmp.agent.standby import StandbyPool
from ffrtmp.wrapper.cmdline import WrapperCall, entry

READY_TIMEOUT_S = 30.0
READ_SYSCALLS = ("0", "63")  # read(2) on x86_64, aarch64


def blocked_reading_stdin(pid: int) -> bool:
    """Whether ``pid`` sleeps in read(0, …), or at least in a pipe read."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
        if len(fields) > 1 and fields[0] in READ_SYSCALLS and int(fields[1], 16) == 0:
            return True
    except (OSError, ValueError):
        pass
    try:
        return "pipe_read" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def wait_ready(timeout_s: float = READY_TIMEOUT_S) -> int:
    """Wait until the one idle standby this process started is blocked on its call; its pid."""
    deadline = time.monotonic() + timeout_s
    command = entry("standby")
    while time.monotonic() < deadline:
        standbys = [p for p in psutil.Process().children() if _cmdline(p) == command]
        if len(standbys) == 1 and blocked_reading_stdin(standbys[0].pid):
            return standbys[0].pid
        time.sleep(0.005)
    raise BenchError(f"no standby wrapper was waiting for its call after {timeout_s:g} s")


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


@dataclasses.dataclass
class StandbyRunner:
    """One standby at a time, filled and waited for before each timed hand-off."""

    state: Path
    logs: Path
    jobs: Path
    pool: StandbyPool = dataclasses.field(default_factory=lambda: StandbyPool(1))
    exits_s: dict[str, float] = dataclasses.field(default_factory=dict)  # job id -> hand-off to exit

    def run(self, job_id: str, command: list[str], timeout_s: float) -> float:
        """Hand ``command`` to a ready standby; seconds from the hand-off to its result.json."""
        self.pool.fill()
        wait_ready()
        job_dir = self.jobs / f"{job_id}.1"
        job_dir.mkdir(parents=True)
        call = WrapperCall(mode="run", job_id=job_id, attempt=1, job_dir=str(job_dir),
                           state_dir=str(self.state), log_dir=str(self.logs), command=tuple(command))
        started = time.perf_counter()
        proc = self.pool.hand_off(call, job_dir / "wrapper.out")
        if proc is None:
            raise BenchError("the standby pool had no wrapper ready")
        LIVE.add(proc)
        try:
            result_s = self._wait(proc, job_dir / "result.json", started, timeout_s)
            self.exits_s[job_id] = time.perf_counter() - started
        except BaseException:
            stop(proc, timeout=5)
            kill_workloads(self.state)
            raise
        LIVE.discard(proc)
        if proc.returncode != 0 or result_s is None:
            raise BenchError(f"standby wrapper for {job_id} exited {proc.returncode} "
                             f"(see {job_dir / 'wrapper.out'})")
        return result_s

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes], result: Path, started: float, timeout_s: float) -> float | None:
        """Seconds to the result (None if it exited without one), waited for as the agent
        waits (a stat per 10 ms on the wrapper's pidfd); returns once it exited."""
        recorded = wait_for_result(proc, result, timeout_s)
        result_s = time.perf_counter() - started if recorded else None
        try:
            proc.wait(max(1.0, started + timeout_s - time.perf_counter()))
        except subprocess.TimeoutExpired:
            raise BenchError(f"a standby wrapper took over {timeout_s:.0f} s") from None
        if not recorded and time.perf_counter() - started > timeout_s:
            raise BenchError(f"a standby wrapper took over {timeout_s:.0f} s")
        return result_s

    def close(self) -> None:
        self.pool.close()
