"""What ffrtmp_worker writes for TLS and auth on the agent's port is what the agent accepts.

ansible-playbook renders the role's agent-web.conf.j2 and token content from its own defaults
and vars (localhost, local connection, nothing installed); ``ffrtmp.agent.web`` then loads the
result as the agent does at start. The Prometheus example that scrapes it passes promtool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ffrtmp.agent.web import hash_password, load_web_config

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"
WORKER = ROLES / "ffrtmp_worker"
TOOLS_VENV = Path(os.environ.get("FFRTMP_MOLECULE_VENV", "/opt/ffrtmp-molecule-venv"))
TOKEN = "prometheus-" + "x" * 21


def _tool(name: str) -> str:
    candidate = TOOLS_VENV / "bin" / name
    tool = str(candidate) if os.access(candidate, os.X_OK) else shutil.which(name)
    if tool is None:
        pytest.skip(f"{name} is not installed")
    return tool


def _render(tmp_path: Path, host_vars: dict) -> dict:
    files = [str(ROLES / r / k / "main.yml") for r in ("ffrtmp_common", "ffrtmp_worker")
             for k in ("defaults", "vars")]
    out = tmp_path / "out"
    out.mkdir()
    inventory = {"all": {"hosts": {"w1": {"ansible_connection": "local", "ansible_host": "10.0.0.5",
                                          "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory), encoding="utf-8")
    # extra vars: above the roles' defaults, which the play loads as vars_files
    extra = {"ffrtmp_config_dir": str(tmp_path / "etc"), **host_vars}
    (tmp_path / "extra.json").write_text(json.dumps(extra), encoding="utf-8")
    template = f"{WORKER}/templates/agent-web.conf.j2"
    tokens = yaml.safe_load((WORKER / "tasks" / "web.yml").read_text(encoding="utf-8"))
    token_content = next(t for t in tokens if t["name"] == "Write the agent's bearer token file")[
        "ansible.builtin.copy"]["content"]
    play = [{"hosts": "all", "gather_facts": False, "vars_files": files, "tasks": [
        {"ansible.builtin.copy": {"dest": f"{out}/agent-web.conf", "mode": "0600",
                                  "content": f"{{{{ lookup('template', '{template}') }}}}"}},
        {"ansible.builtin.copy": {"dest": f"{out}/token", "mode": "0600", "content": token_content},
         "when": "ffrtmp_worker_web_bearer_tokens | length > 0"},
        {"ansible.builtin.copy": {"dest": f"{out}/facts.json", "mode": "0600", "content": (
            "{{ {'env': _ffrtmp_worker_env['FFRTMP_AGENT_WEB_CONFIG'] | trim,"
            " 'san': _ffrtmp_worker_web_san | trim, 'scheme': _ffrtmp_worker_check_scheme,"
            " 'token_file': _ffrtmp_worker_web_token_file} | to_json }}")}},
    ]}]
    (tmp_path / "play.yml").write_text(json.dumps(play), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_HOME": str(tmp_path / "home")}
    result = subprocess.run([_tool("ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                             "-e", f"@{tmp_path / 'extra.json'}", str(tmp_path / "play.yml")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr
    return json.loads((out / "facts.json").read_text(encoding="utf-8"))


def test_off_by_default(tmp_path: Path) -> None:
    facts = _render(tmp_path, {})
    assert facts["env"] == "" and facts["scheme"] == "http"


def test_the_rendered_file_is_what_the_agent_loads(tmp_path: Path) -> None:
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=w1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    stored = hash_password("pw", iterations=20_000)
    facts = _render(tmp_path, {"ffrtmp_worker_web_tls_cert_file": str(cert),
                               "ffrtmp_worker_web_tls_key_file": str(key),
                               "ffrtmp_worker_web_basic_auth_users": {"prometheus": stored},
                               "ffrtmp_worker_web_bearer_tokens": [TOKEN]})
    assert facts["env"] == f"{tmp_path}/etc/agent-web.conf" and facts["scheme"] == "https"
    # the token file where the config says it is, as the role's copy task writes it
    Path(facts["token_file"]).parent.mkdir(parents=True)
    shutil.copy(tmp_path / "out" / "token", facts["token_file"])
    web = load_web_config(str(tmp_path / "out" / "agent-web.conf"))
    assert web is not None and web.tls is not None
    assert web.users == {"prometheus": stored} and web.tokens == (TOKEN,)
    assert web.allows("/metrics", f"Bearer {TOKEN}") and not web.allows("/metrics", "")
    assert web.allows("/ready", "") and web.allows("/health", "")


def test_a_generated_certificate_names_the_host(tmp_path: Path) -> None:
    facts = _render(tmp_path, {"ffrtmp_worker_web_tls_generate": True})
    assert facts["san"] == "DNS:w1,DNS:localhost,IP:127.0.0.1,IP:10.0.0.5"
    assert facts["scheme"] == "https" and facts["env"].endswith("/etc/agent-web.conf")


def test_the_prometheus_example_scrapes_the_agents_with_tls_and_auth(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    source = ROOT / "files" / "prometheus" / "scrape-agents-tls.yml"
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"] if j["job_name"] != "ffrtmp-master"}
    assert set(jobs) == {"ffrtmp-workers", "ffrtmp-wrappers"}
    assert {j.get("scheme") for j in jobs.values()} == {"https"}
    assert any("authorization" in j for j in jobs.values()) and any("basic_auth" in j for j in jobs.values())
    # its files are named relative to the configuration, as Prometheus resolves them
    shutil.copy(source, tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "files" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    for job in jobs.values():
        for name in (job["tls_config"]["ca_file"], job.get("authorization", {}).get("credentials_file"),
                     job.get("basic_auth", {}).get("password_file")):
            if name:
                (tmp_path / name).write_text("x\n", encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_molecule_variant_turns_it_on_with_matching_credentials() -> None:
    """molecule/ha's workers: the hash is of the password verify-agent-web.yml sends."""
    from ffrtmp.agent.web import verify_password

    text = (ROOT / "molecule" / "ha" / "molecule.yml").read_text(encoding="utf-8")
    scenario = yaml.safe_load(text.replace("$$", "$"))  # molecule.yml's own escape of a dollar sign
    values = scenario["provisioner"]["inventory"]["group_vars"]["workers"]
    assert values["ffrtmp_worker_web_tls_generate"] is True
    assert verify_password(values["ffrtmp_worker_web_basic_auth_users"]["prometheus"],
                           values["verify_agent_web_password"])
    assert all(len(t) >= 16 for t in values["ffrtmp_worker_web_bearer_tokens"])
    token = values["ffrtmp_worker_web_bearer_tokens"][0]
    assert values["verify_agent_headers"]["Authorization"] == f"Bearer {token}"
    spec = yaml.safe_load((WORKER / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = spec["argument_specs"]["main"]["options"]
    assert {k for k in values if k.startswith("ffrtmp_")} <= set(options)
    verify = (ROOT / "molecule" / "shared" / "verify-ha.yml").read_text(encoding="utf-8")
    assert "import_playbook: verify-agent-web.yml" in verify


@pytest.mark.parametrize(("variables", "message"), [
    ({"ffrtmp_worker_web_bearer_tokens": ["short"]}, "Every ffrtmp_worker_web_bearer_tokens entry"),
    ({"ffrtmp_worker_web_basic_auth_users": {"prometheus": "plain-password"}},
     "'python -m ffrtmp.agent.web hash'"),
    ({"ffrtmp_worker_web_tls_cert_file": "/etc/ssl/agent.crt"}, "Set both ffrtmp_worker_web_tls_cert_file"),
    ({"ffrtmp_worker_web_tls_cert_file": "/nonexistent/agent.crt",
      "ffrtmp_worker_web_tls_key_file": "/nonexistent/agent.key"}, "/nonexistent/agent.crt does not exist"),
])
def test_the_worker_preflight_refuses_bad_agent_web_settings(tmp_path: Path, variables: dict,
                                                             message: str) -> None:
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            **variables}
    inventory = {"all": {"children": {"master": {"hosts": {"localhost": host}}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory), encoding="utf-8")
    play = [{"hosts": "all", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "ffrtmp_worker", "tasks_from": "preflight.yml"}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home")}
    result = subprocess.run([_tool("ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                             str(tmp_path / "play.yml")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2 and message in out, out
    assert "List the listening TCP sockets" not in out  # refused before anything is probed
    assert "plain-password" not in out
