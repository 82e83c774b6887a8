"""Real ffrtmp processes, for the tests and the benchmarks alike: ports, deadlines, daemons, workloads.

No pytest here: ``bench/`` starts, waits for and stops masters and agents exactly as the
tests do, so both measure and check the same processes. ``tests/conftest.py`` wraps these
in fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psutil
import requests

T = TypeVar("T")

OPERATOR_TOKEN = "op-" + "a" * 29
ENROLL_TOKEN = "enroll-" + "b" * 25

# set by systemd for the unit the tests may run under; a daemon started here must not see them
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID")

# what the tests' masters run with so duties and heartbeats happen within a test's patience
FAST_DUTIES = {"FFRTMP_DUTY_INTERVAL": "0.2", "FFRTMP_HEARTBEAT_INTERVAL": "1"}


# --- waiting and ports ---


class WaitTimeout(AssertionError):
    pass


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # the condition may not be observable yet
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last={last!r}")
        time.sleep(interval)


_PORTS_GIVEN: set[int] = set()


def _ephemeral_low() -> int:
    """The kernel's lowest port for outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _my_share(first: int, end: int) -> tuple[int, int]:
    """This pytest-xdist worker's slice of [first, end): two workers never pick the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = (end - first) // max(1, workers)
    index = int(worker) if worker.isdigit() else 0
    return first + index * share, first + (index + 1) * share


def free_port() -> int:
    """A port nothing listens on and nothing will take before the caller binds it.

    Not port 0: the kernel hands those out as the local end of outgoing connections too, so a
    daemon that binds a second later can find its port taken (a CI run lost an agent that way).
    Below ip_local_port_range only another free_port could take it: each is given once, and each
    pytest-xdist worker has a slice of its own.
    """
    low = _ephemeral_low()
    first, last = _my_share(max(1024, low - 12000), low)
    candidates = [p for p in range(first, last) if p not in _PORTS_GIVEN]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port below {low}")


# --- starting and stopping ---


def clean_env() -> dict[str, str]:
    """This process's environment without any FFRTMP_* or systemd variable leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_") and k not in SYSTEMD_VARIABLES}


def spawn(command: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m ffrtmp COMMAND`` in a session of its own, so one group signal reaches all of it."""
    with log_path.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "ffrtmp", command], env={**clean_env(), **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 40) -> int:
    """Signal the process group, SIGKILL it after ``timeout``; return the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def stop_tree(proc: subprocess.Popen[bytes], timeout: float = 40) -> None:
    """``stop_process``, then kill the descendants it left behind.

    Workloads run in sessions of their own (``setsid``, the wrapper), out of reach of the
    group signal, so descendants still alive once the process is gone are killed one by one.
    """
    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    stop_process(proc, timeout=timeout)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def kill_workloads(state_dir: Path) -> int:
    """End wrappers and workloads found under ``state_dir``: by design they outlive agents."""
    from ffrtmp.wrapper import procinfo

    killed = 0
    for state_file in state_dir.glob("**/wrapper.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        for pid_key, ticks_key in (("wrapper_pid", "wrapper_start_ticks"), ("pid", "pid_start_ticks")):
            pid = state.get(pid_key)
            if isinstance(pid, int) and pid and procinfo.alive(pid, state.get(ticks_key)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if pid_key == "pid":
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


# --- daemons ---


@dataclass
class Daemon:
    """A running ``python -m ffrtmp COMMAND`` and the file its output goes to."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    COMMAND: ClassVar[str] = ""
    BIND: ClassVar[str] = ""  # the setting that holds its HTTP address
    READY_TIMEOUT_S: ClassVar[float] = 1.0

    @property
    def url(self) -> str:
        return "http://" + self.env[self.BIND]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.COMMAND} exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return requests.get(self.url + "/ready", timeout=self.READY_TIMEOUT_S).status_code == 200
        except requests.RequestException:
            return False


@dataclass
class MasterProcess(Daemon):
    extra: dict[str, Any] = field(default_factory=dict)

    COMMAND: ClassVar[str] = "master"
    BIND: ClassVar[str] = "FFRTMP_MASTER_BIND"

    @property
    def metrics_url(self) -> str:
        return "http://" + self.env["FFRTMP_METRICS_BIND"]

    def session(self, token: str = OPERATOR_TOKEN) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s


@dataclass
class AgentProcess(Daemon):
    COMMAND: ClassVar[str] = "agent"
    BIND: ClassVar[str] = "FFRTMP_AGENT_BIND"
    READY_TIMEOUT_S: ClassVar[float] = 2.0

    @property
    def state_dir(self) -> Path:
        return Path(self.env["FFRTMP_STATE_DIR"])

    def job_dirs(self) -> list[Path]:
        root = self.state_dir / "jobs"
        return sorted(root.iterdir()) if root.exists() else []


def await_ready(daemon: Daemon, timeout: float, what: str) -> None:
    """Wait for its /ready; one that never gets there is stopped, and the failure shows its output."""
    try:
        wait_until(daemon.ready, timeout, f"{what} /ready")
    except AssertionError as exc:
        stop_process(daemon.proc)
        raise AssertionError(f"{what} did not become ready: {exc}\n{daemon.output()}") from None
    except BaseException:  # Ctrl-C or SIGTERM while waiting: the caller never got it to stop
        stop_process(daemon.proc)
        raise


def write_tokens(directory: Path, operator: str = OPERATOR_TOKEN,
                 enroll: str = ENROLL_TOKEN) -> tuple[Path, Path]:
    api_path = directory / "api-token"
    enroll_path = directory / "enroll-token"
    for path, token in ((api_path, operator), (enroll_path, enroll)):
        path.write_text(token + "\n")
        path.chmod(0o600)
    return api_path, enroll_path


def master_files_env(directory: Path, operator: str = OPERATOR_TOKEN,
                     enroll: str = ENROLL_TOKEN) -> dict[str, str]:
    """A master whose files all live under ``directory`` on free ports; every other setting default."""
    api, enroll_path = write_tokens(directory, operator, enroll)
    media = directory / "media"
    media.mkdir(exist_ok=True)
    return {
        "FFRTMP_MASTER_BIND": f"127.0.0.1:{free_port()}",
        "FFRTMP_METRICS_BIND": f"127.0.0.1:{free_port()}",
        "FFRTMP_DATABASE": f"sqlite:///{directory / 'master.db'}",
        "FFRTMP_API_TOKEN_FILE": str(api),
        "FFRTMP_ENROLL_TOKEN_FILE": str(enroll_path),
        "FFRTMP_MEDIA_ROOTS": str(media),
        "FFRTMP_LOG_DIR": str(directory / "log"),
    }


def master_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """The FFRTMP_* environment of a test master whose files all live under ``tmp``."""
    return {**master_files_env(tmp), **FAST_DUTIES, **overrides}


def start_master(tmp: Path, env: dict[str, str] | None = None, *, wait_ready: bool = True,
                 name: str = "master", timeout: float = 30) -> MasterProcess:
    env = env or master_env(tmp)
    master = MasterProcess(env, spawn("master", env, tmp / f"{name}.out"), tmp / f"{name}.out")
    if wait_ready:
        await_ready(master, timeout, "master")
    return master


@contextlib.contextmanager
def masters_on(tmp: Path, database: str,
               names: tuple[str, ...] = ("a", "b")) -> Iterator[list[MasterProcess]]:
    """One started master per name, each in its own directory, all on ``database``; stopped after."""
    masters: list[MasterProcess] = []
    try:
        for name in names:
            directory = tmp / name
            directory.mkdir()
            masters.append(start_master(directory, master_env(directory, FFRTMP_DATABASE=database),
                                        name=f"master-{name}"))
        yield masters
    finally:
        for master in masters:
            stop_process(master.proc)


def agent_env(tmp: Path, master: MasterProcess, name: str = "agent", **overrides: str) -> dict[str, str]:
    state = tmp / name
    env = {
        "FFRTMP_MASTER_URL": master.url,
        "FFRTMP_ENROLL_TOKEN_FILE": master.env["FFRTMP_ENROLL_TOKEN_FILE"],
        "FFRTMP_MEDIA_ROOTS": master.env["FFRTMP_MEDIA_ROOTS"],
        "FFRTMP_LOG_DIR": str(tmp / "log"),
        "FFRTMP_STATE_DIR": str(state),
        "FFRTMP_WORK_DIR": str(state / "work"),
        "FFRTMP_AGENT_BIND": f"127.0.0.1:{free_port()}",
        "FFRTMP_SLOTS": "2",
        "FFRTMP_NODE_NAME": name,
    }
    env.update(overrides)
    return env


def start_agent(tmp: Path, master: MasterProcess, name: str = "agent", *, env: dict[str, str] | None = None,
                wait_ready: bool = True, timeout: float = 30, **overrides: str) -> AgentProcess:
    env = env or agent_env(tmp, master, name, **overrides)
    agent = AgentProcess(env, spawn("agent", env, tmp / f"{name}.out"), tmp / f"{name}.out")
    if wait_ready:
        await_ready(agent, timeout, f"agent {name}")
    return agent
