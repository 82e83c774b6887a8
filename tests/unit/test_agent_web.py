"""ffrtmp.agent.web's credential checks, without a server (the real agent: test_agent_web_auth.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ffrtmp.agent.web import WebConfig, hash_password, load_web_config, verify_password
from ffrtmp.config import ConfigError

TOKEN = "t" * 20


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("pw", iterations=10_000)
    assert stored.startswith("pbkdf2_sha256$10000$")
    assert verify_password(stored, "pw") and not verify_password(stored, "pw ")
    assert hash_password("pw", iterations=10_000) != stored  # a new salt each time


def test_basic_and_bearer_are_checked_and_probes_stay_open() -> None:
    web = WebConfig(tls=None, users={"prom": hash_password("pw", iterations=10_000)}, tokens=(TOKEN,))
    assert web.allows("/health", "") and web.allows("/ready", "")
    assert not web.allows("/metrics", "") and not web.allows("/metrics", "Basic !!!")
    assert not web.allows("/metrics", _basic("prom", "nope"))
    assert not web.allows("/metrics", _basic("x", "pw"))
    assert web.allows("/metrics", _basic("prom", "pw"))
    assert len(web._verified) == 1 and web.allows("/metrics", _basic("prom", "pw"))  # remembered
    assert web.allows("/violations", f"Bearer {TOKEN}") and not web.allows("/violations", f"Bearer {TOKEN}x")
    assert web.challenge() == 'Basic realm="ffrtmp agent"' and web.describe() == "http, auth basic+bearer"


def test_a_token_alone_asks_for_a_bearer() -> None:
    web = WebConfig(tls=None, users={}, tokens=(TOKEN,))
    assert web.challenge() == 'Bearer realm="ffrtmp agent"'
    assert not web.allows("/metrics", _basic("prom", "pw"))  # no Basic users: Basic is refused


def test_no_file_is_no_config_and_an_empty_file_turns_nothing_on(tmp_path: Path) -> None:
    assert load_web_config("") is None and load_web_config(None) is None
    (tmp_path / "empty.conf").write_text("# nothing\n", encoding="utf-8")
    web = load_web_config(str(tmp_path / "empty.conf"))
    assert web is not None and web.tls is None and not web.auth


@pytest.mark.parametrize(("text", "named"), [
    ("[basic_auth_users]\nprom = pbkdf2_sha256$100$salt$AAAA\n", "basic_auth_users.prom"),  # too few rounds
    ("[bearer_auth]\n", "bearer_auth.token_file: missing"),
    ("[tls_server_config]\ncert_file = /x\n", "tls_server_config.cert_file: /x: file not found"),
    ("not ini", "file: not an INI file"),
])
def test_a_bad_file_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "web.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    assert caught.value.env == "FFRTMP_AGENT_WEB_CONFIG" and named in str(caught.value)
