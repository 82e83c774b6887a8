"""On a managed master the CLI just works: the ``ffrtmp_master`` role's own ``cli.env``
template, rendered by Ansible for a TLS master of a two-master inventory, is all a real
``ffrtmp nodes list`` needs to reach a real HTTPS master (no exported URL, CA or token).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import OPERATOR_TOKEN, master_env, start_master, stop_process
from tests.helpers import wait_until
from tests.processes import clean_env
from tests.test_deploy_static import ROLES, _tool

INVENTORY = """
all:
  vars: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  children:
    master:
      hosts:
        m1: {}
        m2: {}
"""
PLAY = """
- hosts: m1
  gather_facts: false
  vars_files: %(files)s
  tasks:
    - ansible.builtin.template:
        src: %(template)s
        dest: %(out)s
        mode: "0640"
"""


def render(tmp: Path, **variables: object) -> Path:
    tool = _tool("ansible-playbook")
    if tool is None:
        pytest.skip("ansible-playbook is not installed (tools/molecule/setup-host.sh installs it)")
    files = [str(ROLES / role / kind / "main.yml") for role in ("ffrtmp_common", "ffrtmp_master")
             for kind in ("defaults", "vars")]
    out = tmp / "cli.env"
    (tmp / "inventory.yml").write_text(INVENTORY)
    (tmp / "extra.json").write_text(json.dumps(variables))  # extra vars: above the roles' own files
    (tmp / "play.yml").write_text(PLAY % {"files": json.dumps(files),
                                          "template": ROLES / "ffrtmp_master" / "templates" / "cli.env.j2",
                                          "out": out})
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "PATH": str(Path(tool).parent) + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run([tool, "-i", str(tmp / "inventory.yml"), "-e", f"@{tmp / 'extra.json'}",
                           str(tmp / "play.yml")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture
def tls_master(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTPS master whose certificate sits where the role generates it (CONFIG_DIR/tls)."""
    tls = tmp_path / "etc" / "tls"
    tls.mkdir(parents=True)
    cert, key = tls / "master.crt", tls / "master.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    env = master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert), FFRTMP_TLS_KEY_FILE=str(key))
    process = start_master(tmp_path, env, wait_ready=False)
    bind = env["FFRTMP_MASTER_BIND"]

    def ready() -> bool:
        assert process.proc.poll() is None, process.output()
        return requests.get(f"https://{bind}/ready", verify=str(cert), timeout=2).status_code == 200

    try:
        wait_until(ready, 30, "the HTTPS master's /ready")
        yield bind, tmp_path / "etc"
    finally:
        stop_process(process.proc)


def test_the_rendered_cli_env_is_all_the_cli_needs(tls_master: tuple[str, Path], tmp_path: Path) -> None:
    bind, config_dir = tls_master
    token = tmp_path / "operator-token"
    token.write_text(OPERATOR_TOKEN + "\n")
    port = bind.rpartition(":")[2]
    rendered = render(tmp_path, ffrtmp_config_dir=str(config_dir), ffrtmp_master_tls_generate=True,
                      ffrtmp_master_bind=f"0.0.0.0:{port}", ffrtmp_master_api_token_file=str(token))
    lines = [line for line in rendered.read_text().splitlines() if not line.startswith("#")]
    assert lines == [f"FFRTMP_MASTER_URL=https://127.0.0.1:{port},https://m2:{port}",
                     f"FFRTMP_CA_FILE={config_dir}/tls/master.crt", f"FFRTMP_API_TOKEN_FILE={token}"]
    run = subprocess.run([sys.executable, "-m", "ffrtmp", "nodes", "list", "--json"],
                         env={**clean_env(), "FFRTMP_CONFIG": str(rendered)}, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0 and json.loads(run.stdout) == {"nodes": []}, run


def test_a_plain_master_gets_http_urls_and_no_ca(tmp_path: Path) -> None:
    rendered = render(tmp_path, ffrtmp_master_bind="0.0.0.0:8080")
    lines = [line for line in rendered.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["FFRTMP_MASTER_URL=http://127.0.0.1:8080,http://m2:8080", "FFRTMP_CA_FILE=",
                     "FFRTMP_API_TOKEN_FILE=/etc/ffrtmp/api-token"]
