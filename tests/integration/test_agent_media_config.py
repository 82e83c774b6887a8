"""Bad media configuration stops the agent at start, naming the key (and never a password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import MasterProcess, agent_env, start_agent


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot be read"),
    ("login ffrtmp password s3cret\n", "not a netrc file"),
])
def test_an_unusable_credentials_file_stops_the_agent_with_status_78(
        master_proc: MasterProcess, tmp_path: Path, content: str | None, problem: str) -> None:
    netrc = tmp_path / "media.netrc"
    if content is not None:
        netrc.write_text(content)
    agent = start_agent(tmp_path, master_proc, wait_ready=False, env=agent_env(
        tmp_path, master_proc, FFRTMP_MEDIA_STORE_URL="http://127.0.0.1:9",
        FFRTMP_MEDIA_CREDENTIALS_FILE=str(netrc)))
    assert agent.proc.wait(60) == 78
    output = agent.output()
    assert "FFRTMP_MEDIA_CREDENTIALS_FILE" in output and problem in output, output
    assert "s3cret" not in output


def test_a_malformed_store_url_stops_the_agent_naming_it(master_proc: MasterProcess,
                                                          tmp_path: Path) -> None:
    agent = start_agent(tmp_path, master_proc, wait_ready=False, env=agent_env(
        tmp_path, master_proc, FFRTMP_MEDIA_STORE_URL="ftp://store"))
    assert agent.proc.wait(60) == 78
    assert "FFRTMP_MEDIA_STORE_URL" in agent.output()
