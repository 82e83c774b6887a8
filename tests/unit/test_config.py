"""The settings table: precedence, one-line errors naming the variable, secrets and the docs table."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from ffrtmp import config
from ffrtmp.settings import MasterSettings, codegen
from tests.conftest import ENROLL_TOKEN, OPERATOR_TOKEN, master_env

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def agent_env(tmp: Path, **extra: str) -> dict[str, str]:
    enroll = tmp / "enroll-token"
    enroll.write_text(ENROLL_TOKEN + "\n")
    return {"FFRTMP_ENROLL_TOKEN_FILE": str(enroll), **extra}


# --- precedence ---


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = agent_env(tmp_path, FFRTMP_SLOTS="3")
    assert config.load("agent", {}, agent_env(tmp_path)).slots == 1
    assert config.load("agent", {}, env).slots == 3
    assert config.load("agent", {"slots": "5"}, env).slots == 5


def test_argparse_flags_feed_load_and_absent_flags_fall_through(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, "agent")
    env = agent_env(tmp_path, FFRTMP_SLOTS="3", FFRTMP_SHUTDOWN_TIMEOUT="12")
    settings = config.load("agent", parser.parse_args(["--slots", "7"]), env)
    assert settings.slots == 7 and settings.shutdown_timeout == 12.0
    assert settings.agent_bind == ("0.0.0.0", 9091)  # noqa: S104 - the documented default


def test_each_process_gets_only_its_own_flags() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, "agent")
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "2"])  # a master setting


def test_values_are_typed_after_parsing(tmp_path: Path) -> None:
    env = master_env(tmp_path, FFRTMP_MASTER_BIND="[::1]:8443", FFRTMP_METRICS_BIND=":9100",
                     FFRTMP_MEDIA_ROOTS="/srv/media/:/mnt//nas", FFRTMP_LOG_LEVEL="DEBUG")
    settings = config.load("master", {}, env)
    assert settings.master_bind == ("::1", 8443)
    assert settings.metrics_bind == ("0.0.0.0", 9100)  # noqa: S104 - an empty host means all
    assert settings.media_roots == ("/srv/media", "/mnt/nas")
    assert settings.log_level == "debug"
    assert settings.api_tokens == (OPERATOR_TOKEN,) and settings.enroll_token == ENROLL_TOKEN


def test_master_url_is_a_list_in_order_and_one_url_is_a_list_of_one(tmp_path: Path) -> None:
    one = config.load("agent", {}, agent_env(tmp_path, FFRTMP_MASTER_URL="https://m1:8080/"))
    assert one.master_url == ("https://m1:8080",)
    several = config.load("cli", {"master_url": "http://m2:8080, https://m1:8443/api/"},
                          {"FFRTMP_API_TOKEN": OPERATOR_TOKEN})
    assert several.master_url == ("http://m2:8080", "https://m1:8443/api")
    with pytest.raises(config.ConfigError,
                       match=r"^FFRTMP_MASTER_URL='http://a,,http://b': URL 2 is empty"):
        config.load("agent", {}, agent_env(tmp_path, FFRTMP_MASTER_URL="http://a,,http://b"))
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_MASTER_URL=.*URL 2 \('x:1'\): expected an"):
        config.load("cli", {"master_url": "http://a, x:1"}, {"FFRTMP_API_TOKEN": OPERATOR_TOKEN})


def test_agent_node_name_defaults_to_the_hostname(tmp_path: Path) -> None:
    assert config.load("agent", {}, agent_env(tmp_path)).node_name == socket.gethostname()
    assert config.load("agent", {}, agent_env(tmp_path, FFRTMP_NODE_NAME="enc-7")).node_name == "enc-7"


# --- rejection: one line that starts with the variable ---

BAD_VALUES: dict[str, list[str]] = {
    "master_bind": ["8080", "host:port", "0.0.0.0:65536", ""],
    "metrics_bind": ["localhost", "1.2.3.4:-1"],
    "database": ["mysql://db/ffrtmp", "sqlite://relative.db", ""],
    "api_token_file": [""],
    "enroll_token_file": [""],
    "media_roots": ["srv/media", "/srv/media:relative", ":"],
    "log_dir": [""],
    "log_level": ["loud", ""],
    "workers": ["x", "0", "-1", "1.5", ""],
    "threads": ["many", "0"],
    "graceful_timeout": ["soon", "0", "-5"],
    "read_timeout": ["soon", "0", "-5"],
    "heartbeat_interval": ["0"],
    "node_timeout": ["half a minute"],
    "lease": ["-1"],
    "claim_wait_max": ["x"],
    "retention_days": ["0"],
    "duty_interval": ["0"],
    "max_body": ["1MB"],
    "master_url": ["127.0.0.1:8080", "ftp://master", "http://", "", "http://a,", ",http://a",
                   "http://a,,http://b", "http://a, ftp://b", "http://a,http://a/"],
    "media_store_url": ["127.0.0.1:8088", "ftp://store", "http://"],
    "agent_bind": ["9091"],
    "state_dir": [""],
    "work_dir": [""],
    "slots": ["0", "two"],
    "disk_limit_percent": ["0", "101", "ninety", "nan"],
    "shutdown_timeout": ["0", "forever"],
    "cancel_grace": ["-1"],
    "job_history": ["0", "many"],
    "job_history_hours": ["0", "1.5"],
}
ANY_VALUE_IS_FINE = {"tls_cert_file", "tls_key_file", "ca_file", "node_name", "media_credentials_file",
                     "database_password_file",  # its file: tests/unit/test_database_password.py
                     "agent_web_config"}  # its file: tests/integration/test_agent_web_auth.py


def test_every_setting_has_rejection_cases_or_is_declared_free_form() -> None:
    assert set(BAD_VALUES) | ANY_VALUE_IS_FINE == set(config.BY_NAME)
    assert not set(BAD_VALUES) & ANY_VALUE_IS_FINE


@pytest.mark.parametrize(("name", "value"),
                         [(n, v) for n, values in BAD_VALUES.items() for v in values])
def test_a_bad_value_is_refused_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    setting = config.BY_NAME[name]
    process = setting.used_by[0] if setting.used_by[0] != "cli" else "agent"
    env = {**master_env(tmp_path), **agent_env(tmp_path), setting.env: value}
    with pytest.raises(config.ConfigError) as caught:
        config.load(process, {}, env, read_secrets=False)
    message = str(caught.value)
    assert message.startswith(setting.env), message
    assert caught.value.env == setting.env
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize("value", ["nan", "inf", "NaN", "infinity"])
def test_non_finite_seconds_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_LEASE"):
        config.load("master", {}, master_env(tmp_path, FFRTMP_LEASE=value), read_secrets=False)


def test_an_unbracketed_ipv6_address_without_a_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_MASTER_BIND"):
        config.load("master", {}, master_env(tmp_path, FFRTMP_MASTER_BIND="::1"), read_secrets=False)


def test_a_flag_value_is_refused_naming_the_variable_too(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_SLOTS='zero': expected a positive integer$"):
        config.load("agent", {"slots": "zero"}, agent_env(tmp_path))


def test_https_needs_both_cert_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_TLS_KEY_FILE: HTTPS needs both"):
        config.load("master", {}, master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert)))
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_TLS_CERT_FILE: HTTPS needs both"):
        config.load("master", {}, master_env(tmp_path, FFRTMP_TLS_KEY_FILE=str(cert)))
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_TLS_KEY_FILE=.*file not found"):
        config.load("master", {}, master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert),
                                             FFRTMP_TLS_KEY_FILE=str(tmp_path / "missing.pem")))
    both = config.load("master", {}, master_env(tmp_path, FFRTMP_TLS_CERT_FILE=str(cert),
                                                FFRTMP_TLS_KEY_FILE=str(cert)))
    assert both.tls_cert_file == both.tls_key_file == str(cert)


# --- token files ---


@pytest.mark.parametrize("which", ["FFRTMP_API_TOKEN_FILE", "FFRTMP_ENROLL_TOKEN_FILE"])
@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read token file"),
    ("", "holds no token"),
    ("# only a comment\n\n   \n", "holds no token"),
    ("short-token\n", "at least 16 characters"),
    ("a-long-enough-token-1\nshort\n", "at least 16 characters"),
])
def test_unusable_token_files_are_refused_naming_the_variable(tmp_path: Path, which: str,
                                                               content: str | None, expected: str) -> None:
    env = master_env(tmp_path)
    path = Path(env[which])
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(config.ConfigError) as caught:
        config.load("master", {}, env)
    assert str(caught.value).startswith(f"{which}={str(path)!r}: ")
    assert expected in str(caught.value)


def test_the_agent_reads_only_the_enrollment_token(tmp_path: Path) -> None:
    env = agent_env(tmp_path, FFRTMP_API_TOKEN_FILE=str(tmp_path / "missing"))
    assert config.load("agent", {}, env).enroll_token == ENROLL_TOKEN
    (tmp_path / "enroll-token").unlink()
    with pytest.raises(config.ConfigError, match=r"^FFRTMP_ENROLL_TOKEN_FILE="):
        config.load("agent", {}, env)


def test_token_files_allow_comments_blank_lines_and_several_tokens(tmp_path: Path) -> None:
    env = master_env(tmp_path)
    second = "second-operator-token-xyz"
    Path(env["FFRTMP_API_TOKEN_FILE"]).write_text(f"# ops\n\n  {OPERATOR_TOKEN}  \n{second}\n")
    assert config.load("master", {}, env).api_tokens == (OPERATOR_TOKEN, second)


def test_read_secrets_false_touches_no_token_file(tmp_path: Path) -> None:
    env = master_env(tmp_path, FFRTMP_API_TOKEN_FILE=str(tmp_path / "absent"))
    settings = config.load("master", {}, env, read_secrets=False)
    with pytest.raises(AttributeError):
        _ = settings.api_tokens


# --- Settings ---


def test_settings_are_frozen_and_replace_makes_a_copy(settings: MasterSettings) -> None:
    with pytest.raises(AttributeError, match="frozen"):
        settings.workers = 9  # type: ignore[misc]
    changed = settings.replace(workers=9)
    assert changed.workers == 9 and settings.workers == 2
    with pytest.raises(AttributeError):
        _ = settings.no_such_setting


def test_repr_masks_every_token(settings: MasterSettings) -> None:
    text = repr(settings)
    assert OPERATOR_TOKEN not in text and ENROLL_TOKEN not in text
    assert "'api_tokens': '***'" in text and "'enroll_token': '***'" in text
    assert "'workers': 2" in text  # everything else stays visible for debugging


# --- generated artefacts ---


def test_configuration_doc_embeds_the_generated_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    embedded = text.split(begin, 1)[1].split(end, 1)[0]
    assert embedded == config.markdown_table(), "regenerate the table from config.markdown_table()"


def test_the_settings_classes_are_generated_from_the_table() -> None:
    assert codegen.MODULE.read_text(encoding="utf-8") == codegen.source(), (
        "regenerate with: python -m ffrtmp.settings.codegen")


def test_each_process_gets_its_own_typed_class(tmp_path: Path) -> None:
    master = config.load("master", {}, master_env(tmp_path))
    agent = config.load("agent", {}, agent_env(tmp_path))
    options = config.load("master", {}, master_env(tmp_path), read_secrets=False)
    assert type(master).__name__ == "MasterSettings" and type(agent).__name__ == "AgentSettings"
    assert type(options).__name__ == "MasterConfig" and isinstance(master, type(options))
    assert type(master.replace(workers=3)) is type(master)
    for process, instance in (("master", master), ("agent", agent)):
        table = {s.name for s in config.settings_for(process)}
        secrets = {s.name for s in config.secrets_for(process)}
        assert set(type(instance).__dataclass_fields__) == table | secrets


def test_markdown_table_lists_every_setting_once() -> None:
    table = config.markdown_table()
    for s in config.SETTINGS:
        assert table.count(f"| `{s.env}` |") == 1
    assert "FFRTMP_WORKERS" not in config.markdown_table(["agent"])


def test_env_file_lines_are_in_table_order_and_refuse_foreign_settings() -> None:
    lines = config.env_file_lines({"slots": "2", "master_url": "https://m:8080"}, "agent")
    assert lines == ["FFRTMP_MASTER_URL=https://m:8080", "FFRTMP_SLOTS=2"]
    with pytest.raises(ValueError, match="workers"):
        config.env_file_lines({"workers": "2"}, "agent")


@pytest.mark.parametrize(("raw", "level"), [
    ("debug", "debug"), ("info", "info"), ("warn", "warning"), ("WARN", "warning"),
    ("warning", "warning"), ("error", "error"), ("fatal", "critical"), ("Fatal", "critical")])
def test_the_seeds_log_levels_are_accepted_as_python_level_names(tmp_path: Path, raw: str,
                                                                  level: str) -> None:
    import logging

    from ffrtmp.master.serve import RootLogger

    settings = config.load("master", {}, master_env(tmp_path, FFRTMP_LOG_LEVEL=raw))
    assert settings.log_level == level
    assert logging.getLevelName(level.upper()) == RootLogger.LOG_LEVELS[level], "gunicorn agrees"


def test_a_master_started_with_the_level_fatal_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**master_env(tmp_path, FFRTMP_LOG_LEVEL="fatal", FFRTMP_WORKERS="0")}
    done = subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == config.EX_CONFIG
    assert "FFRTMP_WORKERS" in done.stderr + done.stdout, "the level passed; a later setting stopped it"
    assert "FFRTMP_LOG_LEVEL" not in done.stderr + done.stdout


def test_a_real_master_runs_at_the_seeds_warn_level(tmp_path: Path) -> None:
    from tests.conftest import start_master, stop_process

    master = start_master(tmp_path, master_env(tmp_path, FFRTMP_LOG_LEVEL="warn"))
    try:
        master.session().get(master.url + "/api/v1/jobs", timeout=10).raise_for_status()
    finally:
        assert stop_process(master.proc) == 0
    out = master.output()
    assert " INFO " not in out and "Starting gunicorn" not in out, out
