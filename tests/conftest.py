"""Shared fixtures: settings built in code, the app in-process, and a real master under gunicorn."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ffrtmp import config
from tests.helpers import free_port, wait_until

OPERATOR_TOKEN = "op-" + "a" * 29
ENROLL_TOKEN = "enroll-" + "b" * 25


def write_tokens(directory: Path) -> tuple[Path, Path]:
    api = directory / "api-token"
    enroll = directory / "enroll-token"
    api.write_text(OPERATOR_TOKEN + "\n")
    enroll.write_text(ENROLL_TOKEN + "\n")
    api.chmod(0o600)
    enroll.chmod(0o600)
    return api, enroll


def master_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """The FFRTMP_* environment of a master whose files all live under ``tmp``."""
    api, enroll = write_tokens(tmp)
    media = tmp / "media"
    media.mkdir(exist_ok=True)
    env = {
        "FFRTMP_MASTER_BIND": f"127.0.0.1:{free_port()}",
        "FFRTMP_METRICS_BIND": f"127.0.0.1:{free_port()}",
        "FFRTMP_DATABASE": f"sqlite:///{tmp / 'master.db'}",
        "FFRTMP_API_TOKEN_FILE": str(api),
        "FFRTMP_ENROLL_TOKEN_FILE": str(enroll),
        "FFRTMP_MEDIA_ROOTS": str(media),
        "FFRTMP_LOG_DIR": str(tmp / "log"),
        "FFRTMP_DUTY_INTERVAL": "0.2",
        "FFRTMP_HEARTBEAT_INTERVAL": "1",
    }
    env.update(overrides)
    return env


# --- databases: every store test runs on SQLite and on a real PostgreSQL ---


def _postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields its URL."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries are required (Debian: postgresql); "
                    "tools/bootstrap.sh --test installs them")
    base = Path(tempfile.mkdtemp(prefix="ffrtmp-pg-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "ffrtmp",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -h 127.0.0.1 -k {data} -F -c max_connections=300"
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
                    str(data / "server.log"), "-o", options, "start"], check=True, capture_output=True,
                   timeout=90)
    try:
        yield f"postgresql://ffrtmp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def postgres_schema_url(server: str) -> str:
    """A fresh schema per test: the store's tables land in it through ``search_path``."""
    import psycopg

    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{server}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'master.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_server"))


@pytest.fixture
def settings(tmp_path: Path, database: str) -> config.Settings:
    return config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=database))


def make_app(settings: Any, store: Any = None) -> Any:
    """The app as a master's worker builds it: over a store opened (unless given) and migrated
    first. Its background threads stay off unless the test starts them
    (``app.extensions["ffrtmp"].start()``)."""
    from ffrtmp.master.app import create_app
    from ffrtmp.master.store.factory import open_store

    store = store or open_store(settings.database)
    store.migrate()
    return create_app(settings, store)


@pytest.fixture
def app(settings: config.Settings) -> Iterator[Any]:
    application = make_app(settings)
    yield application
    application.extensions["ffrtmp"].store.close()


class Api:
    """A test client that adds a bearer token and fails on unexpected statuses."""

    def __init__(self, client: Any, token: str = OPERATOR_TOKEN) -> None:
        self.client, self.token = client, token

    def as_(self, token: str) -> Api:
        return Api(self.client, token)

    def request(self, method: str, path: str, expect: int | None = 200, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.get_json())
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api(app: Any) -> Api:
    return Api(app.test_client())


def register(api: Api, name: str = "node-a", **extra: Any) -> tuple[str, Api]:
    body = {"name": name, "slots": 2, "encoders": ["libx264", "aac"], "hwaccels": [], **extra}
    reply = api.as_(ENROLL_TOKEN).post("/api/v1/nodes/register", json=body, expect=None)
    assert reply.status_code in (200, 201), reply.get_json()
    data = reply.get_json()
    return data["node_id"], api.as_(data["credential"])


# --- a real master process ---


@dataclass
class MasterProcess:
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "http://" + self.env["FFRTMP_MASTER_BIND"]

    @property
    def metrics_url(self) -> str:
        return "http://" + self.env["FFRTMP_METRICS_BIND"]

    def session(self, token: str = OPERATOR_TOKEN) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_master(tmp: Path, env: dict[str, str] | None = None, *,
                 wait_ready: bool = True, name: str = "master") -> MasterProcess:
    env = env or master_env(tmp)
    log_path = tmp / f"{name}.out"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_")}
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.pop("JOURNAL_STREAM", None)
    full_env.update(env)
    with log_path.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ffrtmp", "master"], env=full_env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    master = MasterProcess(env, proc, log_path)
    if wait_ready:
        try:
            wait_until(lambda: _ready(master), 30, "master /ready")
        except AssertionError:
            stop_process(proc)
            raise AssertionError(f"master did not become ready:\n{master.output()}") from None
    return master


def _ready(master: MasterProcess) -> bool:
    if master.proc.poll() is not None:
        raise AssertionError(f"master exited with {master.proc.returncode}:\n{master.output()}")
    try:
        return requests.get(master.url + "/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 40) -> int:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


@pytest.fixture
def master_proc(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MasterProcess]:
    master = start_master(tmp_path)
    yield master
    stop_process(master.proc)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"--- master output ---\n{master.output()}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


# --- a real agent process ---


@dataclass
class AgentProcess:
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return "http://" + self.env["FFRTMP_AGENT_BIND"]

    @property
    def state_dir(self) -> Path:
        return Path(self.env["FFRTMP_STATE_DIR"])

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return requests.get(self.url + "/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def job_dirs(self) -> list[Path]:
        root = self.state_dir / "jobs"
        return sorted(root.iterdir()) if root.exists() else []


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
                wait_ready: bool = True, **overrides: str) -> AgentProcess:
    env = env or agent_env(tmp, master, name, **overrides)
    log_path = tmp / f"{name}.out"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_")}
    for key in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "INVOCATION_ID"):
        full_env.pop(key, None)
    full_env.update(env)
    with log_path.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ffrtmp", "agent"], env=full_env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    agent = AgentProcess(env, proc, log_path)
    if wait_ready:
        try:
            wait_until(agent.ready, 30, f"agent {name} /ready")
        except AssertionError as exc:
            stop_process(proc)
            raise AssertionError(f"{exc}\n{agent.output()}") from None
    return agent


@pytest.fixture
def agent(tmp_path: Path, master_proc: MasterProcess) -> Iterator[AgentProcess]:
    """A real agent with 2 slots registered with ``master_proc``; its workloads end with it."""
    agent = start_agent(tmp_path, master_proc)
    yield agent
    stop_process(agent.proc)
    kill_workloads(agent.state_dir)


def kill_workloads(state_dir: Path) -> None:
    """Tests end every wrapper and workload they started: they outlive agents by design."""
    from ffrtmp.wrapper import procinfo

    for state_file in state_dir.glob("**/wrapper.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        for pid_key, ticks_key in (("wrapper_pid", "wrapper_start_ticks"), ("pid", "pid_start_ticks")):
            pid = state.get(pid_key)
            if pid and procinfo.alive(pid, state.get(ticks_key)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL) if pid_key == "pid" else os.kill(pid, signal.SIGKILL)


def random_token() -> str:
    return secrets.token_urlsafe(24)
