"""The agent's endpoints behind TLS and Basic or bearer auth (FFRTMP_AGENT_WEB_CONFIG), for real.

A real master and a real agent process; the certificate is made here with openssl, and every
request is a real HTTPS request verified against it. /health and /ready stay open; /metrics,
/wrapper/metrics and /violations answer 401 without a credential. A broken file stops the agent
at start (exit 78) naming the setting and the key.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import requests

from ffrtmp.agent.web import hash_password
from tests.processes import (
    AgentProcess,
    MasterProcess,
    agent_env,
    start_agent,
    start_master,
    stop_process,
    wait_until,
)

TOKEN = "scrape-" + "t" * 25
PASSWORD = "correct horse battery staple"


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "agent.crt", directory / "agent.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _web_config(tmp: Path, text: str) -> Path:
    path = tmp / "agent-web.conf"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("agent-web")
    cert, key = _certificate(tmp)
    (tmp / "token").write_text(f"# Prometheus\n{TOKEN}\n", encoding="utf-8")
    config = _web_config(tmp, f"""
[tls_server_config]
cert_file = {cert}
key_file = {key}

[basic_auth_users]
prometheus = {hash_password(PASSWORD, iterations=20_000)}

[bearer_auth]
token_file = {tmp / "token"}
""")
    master = start_master(tmp)
    agent = start_agent(tmp, master, "w1", wait_ready=False, FFRTMP_AGENT_WEB_CONFIG=str(config))
    base = "https://" + agent.env["FFRTMP_AGENT_BIND"]
    try:
        wait_until(lambda: requests.get(base + "/ready", verify=str(cert), timeout=2).status_code == 200,
                   30, "the agent's /ready over https")
        yield agent, base, cert
    finally:
        stop_process(agent.proc)
        stop_process(master.proc)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_probes_stay_open_over_https(farm: tuple[AgentProcess, str, Path]) -> None:
    _, base, cert = farm
    health = requests.get(base + "/health", verify=str(cert), timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "healthy"}
    assert requests.get(base + "/ready", verify=str(cert), timeout=5).json()["status"] == "ready"


@pytest.mark.parametrize("path", ["/metrics", "/wrapper/metrics", "/violations"])
def test_data_needs_a_credential(farm: tuple[AgentProcess, str, Path], path: str) -> None:
    _, base, cert = farm
    bare = requests.get(base + path, verify=str(cert), timeout=5)
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "unauthorized"
    assert bare.headers["WWW-Authenticate"] == 'Basic realm="ffrtmp agent"'
    for headers in (_basic("prometheus", "wrong"), _basic("nobody", PASSWORD),
                    {"Authorization": "Bearer " + TOKEN[:-1] + "x"}, {"Authorization": TOKEN}):
        assert requests.get(base + path, headers=headers, verify=str(cert), timeout=10).status_code == 401
    for headers in (_basic("prometheus", PASSWORD), {"Authorization": f"Bearer {TOKEN}"}):
        answer = requests.get(base + path, headers=headers, verify=str(cert), timeout=10)
        assert answer.status_code == 200, answer.text
    if path == "/metrics":
        assert "worker_free_slots" in answer.text


def test_the_port_speaks_only_tls(farm: tuple[AgentProcess, str, Path]) -> None:
    agent, base, _ = farm
    with pytest.raises(requests.ConnectionError):
        requests.get("http://" + agent.env["FFRTMP_AGENT_BIND"] + "/health", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):  # not trusted without the certificate
        requests.get(base + "/health", timeout=5)
    assert requests.get(base + "/health", verify=str(farm[2]), timeout=5).status_code == 200  # still serving


def _refused(tmp: Path, master: MasterProcess, name: str, config: str) -> str:
    env = agent_env(tmp, master, name, FFRTMP_AGENT_WEB_CONFIG=str(_web_config(tmp, config)))
    agent = start_agent(tmp, master, name, env=env, wait_ready=False)
    try:
        assert agent.proc.wait(timeout=60) == 78, agent.output()
    finally:
        stop_process(agent.proc)
    return agent.output()


def test_a_bad_file_stops_the_agent_naming_the_key(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    master = start_master(tmp_path)
    try:
        tls = "[tls_server_config]\n"
        cases = {
            f"{tls}cert_file = {tmp_path}/missing.crt\nkey_file = {key}\n": "tls_server_config.cert_file: ",
            f"{tls}cert_file = {cert}\nkey_fil = {key}\n": "tls_server_config.key_fil: unknown key",
            f"{tls}cert_file = {key}\nkey_file = {cert}\n": "tls_server_config.cert_file: not a",
            "[basic_auth_users]\nprometheus = secret\n": "basic_auth_users.prometheus: expected pbkdf2",
            "[bearer_auth]\ntoken_file = /nonexistent/token\n": "bearer_auth.token_file: /nonexistent/",
            "[tls]\ncert_file = x\n": "tls: unknown section",
        }
        for index, (config, expected) in enumerate(cases.items()):
            output = _refused(tmp_path, master, f"bad{index}", config)
            assert "FFRTMP_AGENT_WEB_CONFIG=" in output and expected in output, output
            assert "secret" not in output  # the stored value is never echoed
    finally:
        stop_process(master.proc)
