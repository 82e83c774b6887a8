"""The operator CLI against a real master under gunicorn: output, exit statuses and config sources.

Commands run in-process through ``cli.main(argv, env=Env(...))`` so stdout, stderr and the
environment are explicit; the cases that are about the process itself (a bad setting at start,
a closed stdout pipe) run ``python -m ffrtmp`` as a real subprocess. One master serves the
module (starting gunicorn per test would dominate the run time); each test cancels the jobs
earlier tests left unfinished, so the jobs a test's node claims are its own.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ffrtmp.cli import main as cli
from ffrtmp.cli.context import Env
from tests.conftest import (
    ENROLL_TOKEN,
    OPERATOR_TOKEN,
    MasterProcess,
    master_env,
    start_master,
    stop_process,
)
from tests.helpers import free_port, wait_until

TESTSRC = "testsrc://?duration=2&size=320x240&rate=25"


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(argv: list[str], environ: dict[str, str], stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(argv, env=Env(stdout=out, stderr=err, environ=environ, stdin=io.StringIO(stdin)))
    return Run(status, out.getvalue(), err.getvalue())


def closing_session(master: MasterProcess, token: str = OPERATOR_TOKEN) -> requests.Session:
    """No keep-alive: an idle connection would hold a gunicorn worker open at teardown."""
    session = master.session(token)
    session.headers["Connection"] = "close"
    return session


@dataclass
class Ops:
    """The CLI and the raw API of one master, for comparing the two."""

    master: MasterProcess
    environ: dict[str, str]
    session: requests.Session = field(init=False)

    def __post_init__(self) -> None:
        self.session = closing_session(self.master)

    def __call__(self, *argv: str, expect: int = 0, stdin: str = "") -> Run:
        result = run_cli(list(argv), self.environ, stdin)
        assert result.status == expect, result
        return result

    def api(self, method: str, path: str, **kw: Any) -> Any:
        reply = self.session.request(method, self.master.url + path, timeout=10, **kw)
        assert reply.ok, reply.text
        return reply.json()

    def settle(self) -> None:
        """Cancel what earlier tests left queued or assigned, so no node of this test claims it."""
        left = self.api("GET", "/api/v1/jobs", params={"state": "queued,assigned", "limit": 500})["jobs"]
        for job in left:
            self.api("POST", f"/api/v1/jobs/{job['id']}/cancel")

    def newest_job(self) -> str | None:
        jobs = self.api("GET", "/api/v1/jobs", params={"limit": 1})["jobs"]
        return jobs[0]["id"] if jobs else None

    def submit(self, **fields: Any) -> str:
        body = {"input": TESTSRC, "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "h264-480p"}],
                **fields}
        return self.api("POST", "/api/v1/jobs", json=body)["job"]["id"]


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MasterProcess]:
    """A real master (gunicorn, two workers, SQLite) shared by the module's tests."""
    process = start_master(tmp_path_factory.mktemp("master"))
    yield process
    stop_process(process.proc)


@pytest.fixture
def ops(master: MasterProcess, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Ops]:
    environ = {"FFRTMP_MASTER_URL": master.url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
               "FFRTMP_CONFIG": str(tmp_path / "no-cli.env")}
    ops = Ops(master, environ)
    ops.settle()
    yield ops
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- master output ---\n{master.output()}")


class Node:
    """Speaks the agent protocol by hand, so tests decide exactly when a job moves."""

    def __init__(self, master: MasterProcess, name: str) -> None:
        self.url = master.url
        self.name = f"{name}-{secrets.token_hex(3)}"
        reply = closing_session(master, ENROLL_TOKEN).post(
            f"{self.url}/api/v1/nodes/register", timeout=10,
            json={"name": self.name, "slots": 1, "encoders": ["libx264", "aac"]})
        reply.raise_for_status()
        self.id = reply.json()["node_id"]
        self.session = closing_session(master, reply.json()["credential"])

    def post(self, path: str, body: dict[str, Any]) -> Any:
        reply = self.session.post(self.url + path, json=body, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def claim(self) -> dict[str, Any]:
        found = wait_until(lambda: self.post(f"/api/v1/nodes/{self.id}/claim",
                                             {"slots": 1, "wait_s": 1})["assignments"], 20, "an assignment")
        return found[0]

    def start(self, a: dict[str, Any]) -> None:
        self.post(f"/api/v1/jobs/{a['job_id']}/start", {"attempt_token": a["attempt_token"]})

    def progress(self, a: dict[str, Any], **figures: Any) -> None:
        self.post(f"/api/v1/nodes/{self.id}/heartbeat",
                  {"running": [{"job_id": a["job_id"], "attempt": a["attempt"], "progress": figures}]})

    def result(self, a: dict[str, Any], outcome: str, **extra: Any) -> None:
        self.post(f"/api/v1/jobs/{a['job_id']}/result",
                  {"attempt_token": a["attempt_token"], "outcome": outcome, **extra})


def in_thread(target: Callable[[], Run]) -> tuple[threading.Thread, list[Run]]:
    done: list[Run] = []
    thread = threading.Thread(target=lambda: done.append(target()), daemon=True)
    thread.start()
    return thread, done


def subprocess_env(**ffrtmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFRTMP_")}
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **ffrtmp}


# --- jobs ---


def test_submit_with_flags_prints_the_id_and_show_prints_the_api_object(ops: Ops,
                                                                        master: MasterProcess) -> None:
    media = master.env["FFRTMP_MEDIA_ROOTS"]
    Node(master, "encoder")  # a node that can run it: submit then has nothing to warn about
    run = ops("jobs", "submit", "--input", TESTSRC, "--output", f"file://{media}/out/a.mp4",
              "--output", "rtmp://127.0.0.1/live/b", "--preset", "h264-720p", "--preset", "copy",
              "--queue", "live", "--priority", "high", "--requires", "libx264", "--duration", "1.5",
              "--intent", "demo")
    job_id = run.out.strip()
    assert run.out == f"{job_id}\n" and run.err == ""
    api = ops.api("GET", f"/api/v1/jobs/{job_id}")
    spec = api["job"]["spec"]
    assert [(o["url"], o["preset"]) for o in spec["outputs"]] == [
        (f"file://{media}/out/a.mp4", "h264-720p"), ("rtmp://127.0.0.1/live/b", "copy")]
    assert (spec["queue"], spec["priority"], spec["requires"], spec["duration_s"], spec["intent"]) == (
        "live", "high", ["libx264"], 1.5, "demo")
    assert ops("jobs", "show", job_id, "--json").json() == api
    table = ops("jobs", "show", job_id).out
    assert table.startswith(f"job {job_id}: queued\n") and "live / high" in table


def test_submit_from_a_spec_file_and_from_stdin(ops: Ops, master: MasterProcess, tmp_path: Path) -> None:
    media = master.env["FFRTMP_MEDIA_ROOTS"]
    spec = {"input": TESTSRC,
            "outputs": [{"url": f"file://{media}/out/demo-720p.mp4", "preset": "h264-720p"},
                        {"url": f"file://{media}/out/demo-480p.mp4", "preset": "h264-480p",
                         "video_bitrate": "900k"}],
            "queue": "default", "priority": "medium", "requires": [], "duration_s": None, "intent": "demo"}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    from_file = ops("jobs", "submit", "--spec", str(path), "--json").json()
    assert set(from_file) == {"job"}
    assert from_file == ops.api("GET", f"/api/v1/jobs/{from_file['job']['id']}")
    assert from_file["job"]["spec"]["outputs"][1]["video_bitrate"] == "900k"

    piped = ops("jobs", "submit", "--spec", "-", stdin=json.dumps({**spec, "intent": "piped"})).out.strip()
    assert ops.api("GET", f"/api/v1/jobs/{piped}")["job"]["intent"] == "piped"


def test_list_prints_a_table_and_json_is_the_api_page(ops: Ops) -> None:
    ids = [ops.submit(intent=f"n{i}") for i in range(3)]
    ops.api("POST", f"/api/v1/jobs/{ids[0]}/cancel")
    table = ops("jobs", "list").out.splitlines()
    assert table[0].split() == ["ID", "STATE", "QUEUE", "PRIORITY", "NODE", "PROGRESS", "INTENT", "CREATED"]
    assert [row.split()[0] for row in table[1:4]] == ids[::-1]
    assert table[1].split()[1:4] == ["queued", "default", "medium"]
    assert ops("jobs", "list", "--json").json() == ops.api("GET", "/api/v1/jobs", params={"limit": 50})
    canceled = ops("jobs", "list", "--state", "canceled", "--json").json()["jobs"]
    assert canceled[0]["id"] == ids[0] and {ids[1], ids[2]}.isdisjoint(j["id"] for j in canceled)
    assert len(ops("jobs", "list", "--limit", "2", "--json").json()["jobs"]) == 2


def test_cancel_then_retry_and_a_refused_retry_exits_1_with_the_message(ops: Ops) -> None:
    job_id = ops.submit()
    assert ops("jobs", "cancel", job_id).out == f"{job_id}: canceled\n"
    assert ops("jobs", "retry", job_id).out == f"{job_id}: queued\n"
    refused = ops("jobs", "retry", job_id, expect=1)
    assert refused.out == ""
    assert refused.err == (f"ffrtmp: job {job_id} is queued; only failed, canceled or lost jobs can be "
                           "retried (HTTP 409)\n")
    again = ops("jobs", "cancel", job_id, "--json").json()
    assert again["job"]["state"] == "canceled"
    assert "job_finished" not in ops("jobs", "cancel", job_id, expect=1).err  # a message, not a code


def test_cancel_of_a_running_job_is_a_request(ops: Ops, master: MasterProcess) -> None:
    job_id = ops.submit()
    node = Node(master, "runner")
    node.start(node.claim())
    assert ops("jobs", "cancel", job_id).out == f"{job_id}: running (cancel requested)\n"


def test_logs_prints_the_tail_of_the_last_attempt(ops: Ops, master: MasterProcess) -> None:
    job_id = ops.submit()
    assert ops("jobs", "logs", job_id).out == "\n"
    node = Node(master, "logger")
    a = node.claim()
    node.start(a)
    node.result(a, "failed", exit_code=1, log_tail="frame=1\nError opening input")
    assert ops("jobs", "logs", job_id).out == "frame=1\nError opening input\n"
    assert ops("jobs", "logs", job_id, "--json").json() == {
        "job_id": job_id, "attempt": 1, "log": "frame=1\nError opening input"}


def test_watch_follows_progress_and_exits_0_when_the_job_succeeds(ops: Ops, master: MasterProcess) -> None:
    job_id = ops.submit()
    out, err = io.StringIO(), io.StringIO()
    env = Env(stdout=out, stderr=err, environ=ops.environ)
    thread, done = in_thread(lambda: Run(cli.main(["jobs", "watch", job_id], env=env), "", ""))
    wait_until(err.getvalue, 20, "watch to print the queued job")
    node = Node(master, "watched")
    a = node.claim()
    node.start(a)
    node.progress(a, percent=50.0, fps=25, speed="1.0x")
    wait_until(lambda: "50.0%" in err.getvalue(), 20, "watch to print the progress")
    node.result(a, "succeeded", exit_code=0)
    thread.join(20)
    assert done and done[0].status == 0
    lines = err.getvalue().splitlines()
    assert lines[0].startswith(f"{job_id} queued")
    assert any(line.startswith(f"{job_id} running") and "[###############...............]" in line
               and "fps 25  speed 1.0x" in line for line in lines), lines
    assert out.getvalue().startswith(f"job {job_id}: succeeded\n")


def test_submit_watch_exits_1_when_the_job_fails(ops: Ops, master: MasterProcess) -> None:
    out, err = io.StringIO(), io.StringIO()
    env = Env(stdout=out, stderr=err, environ=ops.environ)
    argv = ["jobs", "submit", "--input", TESTSRC, "--output", "rtmp://127.0.0.1/live/f", "--watch", "--json"]
    thread, done = in_thread(lambda: Run(cli.main(argv, env=env), "", ""))
    node = Node(master, "failing")
    a = node.claim()
    node.start(a)
    node.result(a, "failed", exit_code=1, reason="exited_nonzero")
    thread.join(20)
    assert done and done[0].status == 1
    assert err.getvalue().startswith(f"submitted {a['job_id']}\n")
    final = json.loads(out.getvalue())
    assert final["job"]["id"] == a["job_id"] and final["job"]["state"] == "failed"


# --- nodes ---


def test_node_commands_list_show_drain_undrain_remove(ops: Ops, master: MasterProcess) -> None:
    node = Node(master, "enc")
    table = ops("nodes", "list").out.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "READY", "SLOTS", "RUNNING", "LAST", "HEARTBEAT",
                                "REASON"]
    [row] = [line.split() for line in table[1:] if line.startswith(node.id)]
    assert row[:6] == [node.id, node.name, "online", "-", "1", "0"]  # "-": it reports no readiness
    assert ops("nodes", "list", "--json").json() == ops.api("GET", "/api/v1/nodes")
    assert ops("nodes", "show", node.id, "--json").json() == ops.api("GET", f"/api/v1/nodes/{node.id}")
    assert ops("nodes", "show", node.id).out.splitlines()[1].split()[1] == node.name
    assert ops("nodes", "drain", node.id).out == f"{node.id}: draining\n"
    assert ops.api("GET", f"/api/v1/nodes/{node.id}")["node"]["draining"] is True
    undrained = ops("nodes", "undrain", node.id, "--json").json()
    assert undrained["node"]["draining"] is False
    assert ops("nodes", "remove", node.id).out == f"{node.id}: removed\n"
    gone = ops("nodes", "show", node.id, expect=1)
    assert gone.err == f"ffrtmp: no node {node.id} (HTTP 404)\n"


def test_removing_a_busy_node_exits_1_and_says_why(ops: Ops, master: MasterProcess) -> None:
    ops.submit()
    node = Node(master, "busy")
    node.claim()
    refused = ops("nodes", "remove", node.id, expect=1)
    assert "has 1 running job(s)" in refused.err and "(HTTP 409)" in refused.err


# --- errors and exit statuses ---


def test_unreachable_master_exits_1(tmp_path: Path) -> None:
    environ = {"FFRTMP_MASTER_URL": f"http://127.0.0.1:{free_port()}", "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
               "FFRTMP_CONFIG": str(tmp_path / "none")}
    run = run_cli(["jobs", "list"], environ)
    assert run.status == 1 and run.out == ""
    assert run.err.startswith("ffrtmp: cannot reach the master at http://127.0.0.1:")
    assert run.err.count("\n") == 1


def test_a_refused_token_exits_4(ops: Ops, master: MasterProcess) -> None:
    wrong = run_cli(["jobs", "list"], {**ops.environ, "FFRTMP_API_TOKEN": "not-the-operator-token"})
    assert wrong.status == 4 and wrong.err == "ffrtmp: invalid token (HTTP 401)\n"
    node = Node(master, "sneaky")
    forbidden = run_cli(["nodes", "list"], {**ops.environ, "FFRTMP_API_TOKEN": node.session.headers[
        "Authorization"].split()[1]})
    assert forbidden.status == 4 and "(HTTP 403)" in forbidden.err


def test_a_missing_token_file_exits_78_naming_the_file(master: MasterProcess, tmp_path: Path) -> None:
    missing = tmp_path / "operator" / "api-token"  # tmp_path/api-token is the master's own
    missing.parent.mkdir()
    environ = {"FFRTMP_MASTER_URL": master.url, "FFRTMP_API_TOKEN_FILE": str(missing),
               "FFRTMP_CONFIG": str(tmp_path / "none")}
    run = run_cli(["jobs", "list"], environ)
    assert run.status == 78 and run.out == ""
    assert str(missing) in run.err and run.err.count("\n") == 1
    flag = run_cli(["jobs", "list", "--token-file", str(missing)], {**environ, "FFRTMP_API_TOKEN_FILE": ""})
    assert flag.status == 78 and str(missing) in flag.err
    missing.write_text("# no token here\n")
    assert run_cli(["jobs", "list"], environ).status == 78
    missing.write_text(OPERATOR_TOKEN + "\n")
    assert run_cli(["jobs", "list"], environ).status == 0


def test_a_missing_token_file_names_the_variable_that_pointed_at_it(tmp_path: Path) -> None:
    environ = {"FFRTMP_MASTER_URL": "http://127.0.0.1:1", "FFRTMP_CONFIG": str(tmp_path / "none"),
               "FFRTMP_API_TOKEN_FILE": str(tmp_path / "api-token")}
    run = run_cli(["jobs", "list"], environ)
    assert run.status == 78
    assert "FFRTMP_API_TOKEN_FILE" in run.err


def test_the_operator_token_file_follows_the_masters_rules(tmp_path: Path) -> None:
    short = tmp_path / "api-token"
    short.write_text("# ops\nshort-token\n")
    environ = {"FFRTMP_MASTER_URL": "http://127.0.0.1:1", "FFRTMP_CONFIG": str(tmp_path / "none"),
               "FFRTMP_API_TOKEN_FILE": str(short)}
    run = run_cli(["nodes", "list"], environ)
    assert run.status == 78 and run.out == ""
    assert run.err == (f"ffrtmp: FFRTMP_API_TOKEN_FILE={str(short)!r}: "
                       "every token must be at least 16 characters\n")


def test_unknown_job_or_node_exits_1(ops: Ops) -> None:
    assert ops("jobs", "show", "j-missing", expect=1).err == "ffrtmp: no job j-missing (HTTP 404)\n"
    assert ops("jobs", "cancel", "j-missing", expect=1).err == "ffrtmp: no job j-missing (HTTP 404)\n"
    assert ops("nodes", "drain", "n-missing", expect=1).err == "ffrtmp: no node n-missing (HTTP 404)\n"


def test_an_invalid_job_exits_2_and_names_the_field(ops: Ops) -> None:
    newest = ops.newest_job()
    run = ops("jobs", "submit", "--input", TESTSRC, "--output", "rtmp://127.0.0.1/live/x",
              "--preset", "h264-4k", expect=2)  # found by the CLI, before any request
    assert run.err.startswith("ffrtmp: outputs[0].preset: must be one of h264-1080p,")
    assert run.err.count("\n") == 1 and run.out == ""
    bad_state = ops("jobs", "list", "--state", "sleeping", expect=2)  # the master's 422
    assert bad_state.err.startswith("ffrtmp: state: must be one of")
    assert ops.newest_job() == newest, "nothing was queued"


def test_usage_errors_exit_2(ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newest = ops.newest_job()
    assert run_cli(["jobs"], ops.environ).status == 2
    assert "required: ACTION" in capsys.readouterr().err
    assert run_cli(["jobs", "show"], ops.environ).status == 2
    assert run_cli(["jobs", "list", "--queue", "urgent"], ops.environ).status == 2
    assert "invalid choice: 'urgent'" in capsys.readouterr().err
    assert run_cli(["nodes", "reboot", "n-1"], ops.environ).status == 2
    no_output = ops("jobs", "submit", "--input", TESTSRC, expect=2)
    assert no_output.err == "ffrtmp: give --spec FILE, or --input and at least one --output\n"
    presets = ops("jobs", "submit", "--input", TESTSRC, "--output", "rtmp://h/a/1", "--output",
                  "rtmp://h/a/2", "--output", "rtmp://h/a/3", "--preset", "copy", "--preset", "copy",
                  expect=2)
    assert "one per --output" in presets.err
    missing_spec = ops("jobs", "submit", "--spec", str(tmp_path / "nope.json"), expect=2)
    assert missing_spec.err.startswith(f"ffrtmp: --spec {tmp_path / 'nope.json'}:")
    assert ops.newest_job() == newest, "nothing was queued"


def test_master_with_a_bad_setting_exits_78_with_one_line(tmp_path: Path) -> None:
    env = subprocess_env(**master_env(tmp_path, FFRTMP_WORKERS="x"))
    proc = subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 78, proc
    assert proc.stderr == "ffrtmp: FFRTMP_WORKERS='x': expected a positive integer\n"
    assert proc.stdout == ""


def test_a_closed_stdout_pipe_ends_quietly(ops: Ops, master: MasterProcess) -> None:
    """``ffrtmp jobs list --json | head -1``: no traceback, no "Exception ignored", no status 120."""
    for i in range(150):
        ops.submit(intent=f"bulk-{i}")
    size = len(json.dumps(ops.api("GET", "/api/v1/jobs", params={"limit": 150}), indent=2))
    assert size > 2 * 65536, "the output must be larger than a pipe buffer to reach the broken pipe"
    env = subprocess_env(FFRTMP_MASTER_URL=master.url, FFRTMP_API_TOKEN=OPERATOR_TOKEN,
                         FFRTMP_CONFIG=ops.environ["FFRTMP_CONFIG"])
    lister = subprocess.Popen([sys.executable, "-m", "ffrtmp", "jobs", "list", "--json", "--limit", "150"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=lister.stdout, stdout=subprocess.PIPE)
    assert lister.stdout is not None
    lister.stdout.close()  # only head holds the read end now
    first, _ = head.communicate(timeout=60)
    _, stderr = lister.communicate(timeout=60)
    assert first == b"{\n"
    assert stderr == b"", stderr.decode()
    assert lister.returncode in (0, 1)  # Python exits 120 when it cannot flush stdout at exit


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_while_writing_is_status_1_without_a_message(
        ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    silenced: list[bool] = []
    monkeypatch.setattr(cli, "_silence_stdout", lambda: silenced.append(True))
    ops.submit()
    err = io.StringIO()
    status = cli.main(["jobs", "list"], env=Env(stdout=ClosedPipe(), stderr=err, environ=ops.environ))
    assert status == 1 and err.getvalue() == "" and silenced == [True]


# --- where the URL and token come from ---


def test_a_config_file_supplies_url_and_token_and_flags_and_env_win(master: MasterProcess,
                                                                    tmp_path: Path) -> None:
    config_file = tmp_path / "cli.env"
    config_file.write_text(f"# operator defaults\nFFRTMP_MASTER_URL={master.url}\n"
                           f'FFRTMP_API_TOKEN="{OPERATOR_TOKEN}"\nNOT_OURS=1\n')
    environ = {"FFRTMP_CONFIG": str(config_file)}
    assert run_cli(["nodes", "list", "--json"], environ).status == 0
    wrong_env = run_cli(["nodes", "list"], {**environ, "FFRTMP_API_TOKEN": "not-the-operator-token"})
    assert wrong_env.status == 4
    closed = f"http://127.0.0.1:{free_port()}"
    assert run_cli(["nodes", "list"], {**environ, "FFRTMP_MASTER_URL": closed}).status == 1
    flag = run_cli(["nodes", "list", "--master-url", master.url],
                   {**environ, "FFRTMP_MASTER_URL": closed})
    assert flag.status == 0
    bad_url = run_cli(["nodes", "list", "--master-url", "ftp://x"], environ)
    assert bad_url.status == 78 and bad_url.err.startswith("ffrtmp: FFRTMP_MASTER_URL='ftp://x'")


# --- TLS ---


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_master(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[tuple[MasterProcess, str]]:
    cert, key = certificate
    env = master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert), FFRTMP_TLS_KEY_FILE=str(key))
    process = start_master(tmp_path, env, wait_ready=False)
    url = "https://" + env["FFRTMP_MASTER_BIND"]

    def ready() -> bool:
        if process.proc.poll() is not None:
            raise AssertionError(f"master exited with {process.proc.returncode}:\n{process.output()}")
        try:
            return requests.get(url + "/ready", verify=str(cert), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 30, "the HTTPS master's /ready")
        yield process, url
    finally:
        stop_process(process.proc)


def test_cli_verifies_an_https_master_with_the_ca_file(tls_master: tuple[MasterProcess, str], tmp_path: Path,
                                                       certificate: tuple[Path, Path]) -> None:
    process, url = tls_master
    environ = {"FFRTMP_MASTER_URL": url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
               "FFRTMP_CONFIG": str(tmp_path / "none"), "FFRTMP_CA_FILE": str(certificate[0])}
    trusted = run_cli(["jobs", "list", "--json"], environ)
    assert trusted.status == 0 and trusted.json() == {"jobs": [], "next_cursor": None}
    assert run_cli(["nodes", "list"], {**environ, "FFRTMP_CA_FILE": ""}).status == 1
    untrusted = run_cli(["jobs", "list"], {k: v for k, v in environ.items() if k != "FFRTMP_CA_FILE"})
    assert untrusted.status == 1
    assert untrusted.err.startswith(f"ffrtmp: TLS verification of {url} failed:")
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.err
    flag = run_cli(["jobs", "list", "--ca-file", str(certificate[0])],
                   {k: v for k, v in environ.items() if k != "FFRTMP_CA_FILE"})
    assert flag.status == 0
    with pytest.raises(requests.RequestException):  # the API port answers no plain HTTP
        requests.get(process.url + "/health", timeout=5)


def test_master_refuses_to_start_with_a_certificate_but_no_key(tmp_path: Path,
                                                               certificate: tuple[Path, Path]) -> None:
    env = subprocess_env(**master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(certificate[0])))
    proc = subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 78, proc
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("ffrtmp: FFRTMP_TLS_KEY_FILE: HTTPS needs both")


def test_agent_verifies_an_https_master_with_the_ca_file(tls_master: tuple[MasterProcess, str],
                                                         certificate: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    """Agents use HTTPS the same way: verified against FFRTMP_CA_FILE, never silently skipped."""
    from tests.conftest import agent_env, start_agent

    master, url = tls_master
    cert, _ = certificate
    trusting = start_agent(tmp_path, master, "trusting",
                           env=agent_env(tmp_path, master, "trusting", FFRTMP_MASTER_URL=url,
                                         FFRTMP_CA_FILE=str(cert)))
    doubting = start_agent(tmp_path, master, "doubting", wait_ready=False,
                           env=agent_env(tmp_path, master, "doubting", FFRTMP_MASTER_URL=url))
    try:
        assert requests.get(trusting.url + "/ready", timeout=5).json()["checks"]["master"] == "reachable"
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in doubting.output(), 30,
                   "the agent without the CA to refuse the master's certificate")
        ready = requests.get(doubting.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["master"] != "reachable"
    finally:
        stop_process(trusting.proc)
        stop_process(doubting.proc)
