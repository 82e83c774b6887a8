"""rolling_update.yml's optional drain-and-wait, run by ansible-playbook against a stand-in CLI.

The worker play's own ``vars`` and its drain tasks, taken from the playbook, run on localhost
(local connection); ``ffrtmp`` is a script that records its argv and environment and exits as
told, standing for ``ffrtmp nodes drain NODE --wait --deadline D`` (exit 0 drained, 1 at the
deadline). One test runs the real CLI against a real master and agent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import start_agent, start_master, stop_process, wait_until

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
TOOLS_VENV = Path(os.environ.get("FFRTMP_MOLECULE_VENV", "/opt/ffrtmp-molecule-venv"))
FAKE_CLI = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/../argv"
env | grep '^FFRTMP_' | sort > "$(dirname "$0")/../env"
echo "node {0}: 0 running jobs"
exit {1}
"""


def _worker_play() -> dict:
    plays = yaml.safe_load((ROOT / "playbooks" / "rolling_update.yml").read_text(encoding="utf-8"))
    return next(p for p in plays if p.get("serial") and p["hosts"] == "workers")


def _run(tmp_path: Path, extra: dict, exit_code: int = 0, was_draining: bool = False,
         node: str = "n-1"):
    tool = TOOLS_VENV / "bin" / "ansible-playbook"
    tool_path = str(tool) if os.access(tool, os.X_OK) else shutil.which("ansible-playbook")
    if tool_path is None:
        pytest.skip("ansible-playbook is not installed (tools/molecule/setup-host.sh installs it)")
    (tmp_path / "bin").mkdir()
    cli = tmp_path / "bin" / "ffrtmp"
    cli.write_text(FAKE_CLI.format("n-1", exit_code), encoding="utf-8")
    cli.chmod(0o755)
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "ffrtmp_install_dir": str(tmp_path), **extra}  # extra may name the real CLI's
    inventory = {"all": {"children": {"master": {"hosts": {"localhost": host}},
                                      "workers": {"hosts": {"localhost": None}}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory), encoding="utf-8")
    real = _worker_play()
    wanted = {"Assert that the drain settings are valid", "Drain the node",
              "Drain the node and wait until its running jobs have ended"}
    tasks = [{"name": "Stand in for the registry lookup", "ansible.builtin.set_fact": {
        "_ffrtmp_roll_node": {"id": node, "name": "w1"}, "_ffrtmp_roll_was_draining": was_draining}}]
    tasks += [t for t in real["pre_tasks"] if t["name"] in wanted]
    for task in tasks:  # the API drain would need a master: it must be skipped when waiting
        if task["name"] == "Drain the node":
            task["ansible.builtin.uri"]["url"] = "http://127.0.0.1:9/unreachable"
    play = [{"name": "Drain", "hosts": "workers", "gather_facts": False, "vars": real["vars"],
             "tasks": tasks}]
    (tmp_path / "play.yml").write_text(json.dumps(play), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_HOME": str(tmp_path / "home")}
    return subprocess.run([tool_path, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_drain_and_wait_calls_the_cli_on_the_master(tmp_path: Path) -> None:
    result = _run(tmp_path, {"ffrtmp_rolling_drain": True, "ffrtmp_rolling_drain_deadline": "1h30m"})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    argv = (tmp_path / "argv").read_text(encoding="utf-8").split("\n")[:-1]
    assert argv == ["nodes", "drain", "n-1", "--wait", "--deadline", "1h30m"]
    env = (tmp_path / "env").read_text(encoding="utf-8").splitlines()
    assert "FFRTMP_MASTER_URL=http://127.0.0.1:8080" in env
    assert "FFRTMP_API_TOKEN_FILE=/etc/ffrtmp/api-token" in env
    assert not any(line.startswith("FFRTMP_CA_FILE=") for line in env)
    assert "changed: [localhost]" in out and "[WARNING]" not in out, out


def test_a_generated_master_certificate_is_the_clis_ca(tmp_path: Path) -> None:
    result = _run(tmp_path, {"ffrtmp_rolling_drain": True, "ffrtmp_master_tls_generate": True})
    assert result.returncode == 0, result.stdout + result.stderr
    env = (tmp_path / "env").read_text(encoding="utf-8").splitlines()
    assert "FFRTMP_MASTER_URL=https://127.0.0.1:8080" in env
    assert "FFRTMP_CA_FILE=/etc/ffrtmp/tls/master.crt" in env
    argv = (tmp_path / "argv").read_text(encoding="utf-8").split("\n")
    assert argv[5] == "30m"  # the default deadline


def test_the_deadline_passing_fails_the_host(tmp_path: Path) -> None:
    result = _run(tmp_path, {"ffrtmp_rolling_drain": True}, exit_code=1)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Drain the node and wait until its running jobs have ended" in out and "fatal: [localhost]" in out


def test_a_node_drained_before_the_roll_is_only_waited_for(tmp_path: Path) -> None:
    result = _run(tmp_path, {"ffrtmp_rolling_drain": True}, was_draining=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert (tmp_path / "argv").is_file()
    assert "changed=0" in out, out


def test_without_the_option_no_wait_happens(tmp_path: Path) -> None:
    """Off by default: the API drain (no wait) runs, which here reaches nothing and fails."""
    result = _run(tmp_path, {})
    out = result.stdout + result.stderr
    assert not (tmp_path / "argv").exists()
    assert result.returncode == 2 and "TASK [Drain the node]" in out, out


def test_a_bad_deadline_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, {"ffrtmp_rolling_drain": True, "ffrtmp_rolling_drain_deadline": "soon"})
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "ffrtmp_rolling_drain_deadline='soon'" in out, out
    assert not (tmp_path / "argv").exists()



def test_the_real_cli_drains_a_real_node(tmp_path: Path) -> None:
    """The task's argv and environment against a real master and agent: exit 0, the node drained."""
    farm, run = tmp_path / "farm", tmp_path / "run"
    farm.mkdir()
    run.mkdir()
    master = start_master(farm)
    agent = None
    try:
        agent = start_agent(farm, master, "w1")
        api = master.url + "/api/v1/nodes"
        nodes = wait_until(lambda: master.session().get(api, timeout=5).json()["nodes"], 30, "registered")
        result = _run(run, {"ffrtmp_rolling_drain": True, "ffrtmp_rolling_drain_deadline": "1m",
                            "ffrtmp_master_bind": master.env["FFRTMP_MASTER_BIND"],
                            "ffrtmp_master_api_token_file": master.env["FFRTMP_API_TOKEN_FILE"],
                            # the real CLI, in the venv these tests run from
                            "ffrtmp_install_dir": str(Path(sys.executable).parent.parent)},
                      node=nodes[0]["id"])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "changed: [localhost]" in result.stdout, result.stdout
        node = master.session().get(f"{api}/{nodes[0]['id']}", timeout=5).json()["node"]
        assert node["draining"] is True and node["status"] == "draining", node
    finally:
        if agent is not None:
            stop_process(agent.proc)
        stop_process(master.proc)
