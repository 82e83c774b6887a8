"""Shared fixtures: settings built in code, the app in-process, and a real master under gunicorn."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ffrtmp import config
from ffrtmp.settings import MasterSettings
from tests import pg_cluster
from tests.processes import (  # re-exported: the tests import the process helpers from here
    ENROLL_TOKEN,
    OPERATOR_TOKEN,
    AgentProcess,
    MasterProcess,
    agent_env,
    free_port,
    kill_workloads,
    master_env,
    start_agent,
    start_master,
    stop_process,
    write_tokens,
)

__all__ = ["AgentProcess", "MasterProcess", "agent_env", "kill_workloads", "master_env", "start_agent",
           "start_master", "stop_process", "write_tokens"]

if TYPE_CHECKING:
    from ffrtmp.master.store.sqlstore import SqlStore


# --- databases: every store test runs on SQLite and on a real PostgreSQL ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields its URL."""
    if pg_cluster.bindir() is None:
        pytest.fail("PostgreSQL server binaries are required (Debian: postgresql); "
                    "tools/bootstrap.sh --test installs them")
    with pg_cluster.running(free_port()) as cluster:
        yield cluster.url


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
def store(database: str) -> Iterator[SqlStore]:
    """A migrated store over each database, closed after the test."""
    from ffrtmp.master.store.factory import open_store
    from ffrtmp.master.store.sqlstore import SqlStore

    opened = open_store(database)
    assert isinstance(opened, SqlStore)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """Give ``logs.setup`` an empty root logger, and put pytest's handlers back afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    yield root
    for handler in root.handlers:
        handler.close()
    root.handlers = saved
    root.setLevel(level)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> MasterSettings:
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
def app(settings: MasterSettings) -> Iterator[Any]:
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


@pytest.fixture
def agent(tmp_path: Path, master_proc: MasterProcess) -> Iterator[AgentProcess]:
    """A real agent with 2 slots registered with ``master_proc``; its workloads end with it."""
    agent = start_agent(tmp_path, master_proc)
    yield agent
    stop_process(agent.proc)
    kill_workloads(agent.state_dir)


@pytest.fixture
def webdav_store(tmp_path: Path) -> Iterator[Any]:
    """A real nginx WebDAV media store on loopback (``tests/webdav.py``), stopped after the test."""
    from tests.webdav import start_webdav

    store = start_webdav(tmp_path)
    yield store
    store.stop()


def random_token() -> str:
    return secrets.token_urlsafe(24)
