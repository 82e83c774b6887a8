"""Logging: a file that survives logrotate, journald priorities on stdout, job=/node= fields."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from ffrtmp import logs
from tests.conftest import Api, register


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_setup_writes_to_the_component_file_and_stdout(tmp_path: Path, root_logger: logging.Logger,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), level="info", stream=out)
    assert path == tmp_path / "master" / "master.log"
    log = logging.getLogger("ffrtmp.test")
    log.info("hello %s", "world")
    log.debug("not at info level")
    [line] = lines(path)
    assert line.endswith("Z INFO ffrtmp.test: hello world")
    assert line[:4].isdigit() and "T" in line[:11]
    assert out.getvalue() == line + "\n"


def test_setup_replaces_earlier_handlers_instead_of_doubling_lines(tmp_path: Path,
                                                                   root_logger: logging.Logger) -> None:
    out = io.StringIO()
    logs.setup("agent", "agent.log", log_dir=str(tmp_path), stream=out)
    path = logs.setup("agent", "agent.log", log_dir=str(tmp_path), stream=out)
    logging.getLogger("x").warning("once")
    assert len(lines(path)) == 1 and out.getvalue().count("once") == 1
    assert len(root_logger.handlers) == 2


# A moved or deleted file: tests/unit/test_logs_rotation.py (the path is checked once a second).


def test_under_journald_stdout_lines_carry_the_priority(tmp_path: Path, root_logger: logging.Logger,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:123456")
    out = io.StringIO()
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), level="debug", stream=out)
    log = logging.getLogger("ffrtmp.j")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert out.getvalue().splitlines() == [
        "<7>DEBUG ffrtmp.j: d", "<6>INFO ffrtmp.j: i", "<4>WARNING ffrtmp.j: w",
        "<3>ERROR ffrtmp.j: e", "<2>CRITICAL ffrtmp.j: c"]
    assert not any(line.startswith("<") for line in lines(path)), "the file keeps timestamps, no prefix"


def test_a_traceback_is_one_journal_line_with_the_error_priority(tmp_path: Path, root_logger: logging.Logger,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    out = io.StringIO()
    logs.setup("master", "master.log", log_dir=str(tmp_path), stream=out)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("ffrtmp.t").exception("it failed")
    [printed] = out.getvalue().splitlines()
    assert printed.startswith("<3>ERROR ffrtmp.t: it failed\\nTraceback (most recent call last):\\n")
    assert printed.endswith("\\nValueError: boom\\nsecond line")


def test_without_journald_there_is_no_prefix(tmp_path: Path, root_logger: logging.Logger,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logs.setup("master", "master.log", log_dir=str(tmp_path), stream=out)
    logging.getLogger("x").error("plain")
    assert not out.getvalue().startswith("<")


def test_job_and_node_fields_end_the_line(tmp_path: Path, root_logger: logging.Logger) -> None:
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), stream=io.StringIO())
    log = logging.getLogger("ffrtmp.store")
    log.info("job started", extra=logs.fields(job="j-1", node="n-2", attempt=3))
    log.info("node seen", extra=logs.fields(node="n-2", job=None, attempt=""))
    first, second = lines(path)
    assert first.endswith("ffrtmp.store: job started job=j-1 attempt=3 node=n-2")
    assert second.endswith("ffrtmp.store: node seen node=n-2")


def test_fields_keeps_only_known_non_empty_values() -> None:
    assert logs.fields(job="j", node=None, attempt="", other="x") == {"job": "j"}
    assert logs.fields(attempt=0) == {"attempt": 0}


def test_unwritable_log_dir_falls_back_to_dot_logs(tmp_path: Path, root_logger: logging.Logger,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file, so mkdir under it fails even for root")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    path = logs.setup("worker", "agent.log", log_dir=str(blocker / "ffrtmp"), stream=io.StringIO())
    assert path == cwd / "logs" / "worker" / "agent.log"
    logging.getLogger("x").info("landed")
    assert lines(path)[0].endswith("landed")


def test_no_writable_place_at_all_is_an_error_naming_the_dir(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").write_text("also a file")
    with pytest.raises(OSError, match=f"cannot write agent.log under {blocker}"):
        logs.log_path(str(blocker), "worker", "agent.log")


# --- client text cannot forge lines: every record is one line, control characters escaped ---

HOSTILE = "a\nb\rc\x1b[31md\x00e\x7ff\x85g\u2028h\u2029i\ud800j\tk\u202el"
ESCAPED = "a\\nb\\rc\\x1b[31md\\x00e\\x7ff\\x85g\\u2028h\\u2029i\\ud800j\\tk\\u202el"


@pytest.mark.parametrize("journal", [False, True])
def test_control_characters_in_messages_fields_and_exceptions_are_escaped(
        tmp_path: Path, root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, journal: bool) -> None:
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), stream=out)
    log = logging.getLogger("ffrtmp.t")
    log.warning("reason %s", HOSTILE, extra=logs.fields(job=HOSTILE, node="n-1"))
    log.warning(HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("failed: %s", HOSTILE)
    log.info("stack", stack_info=True)
    for text in (path.read_bytes().decode("utf-8"), out.getvalue()):
        printed = text.split("\n")
        assert printed[-1] == "" and len(printed) == 5, printed
        assert printed[0].endswith(f"WARNING ffrtmp.t: reason {ESCAPED} job={ESCAPED} node=n-1")
        assert printed[1].endswith(f"WARNING ffrtmp.t: {ESCAPED}")
        assert f"ERROR ffrtmp.t: failed: {ESCAPED}\\nTraceback (most recent call last):\\n" in printed[2]
        assert printed[2].endswith(f"\\nValueError: {ESCAPED}")
        assert "\\nStack (most recent call last):\\n" in printed[3]
        assert not any(0 <= ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in text.replace("\n", ""))
    assert out.getvalue().startswith("<4>WARNING") if journal else out.getvalue()[:4].isdigit()


def test_printable_unicode_and_backslashes_are_kept(tmp_path: Path, root_logger: logging.Logger) -> None:
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), stream=io.StringIO())
    logging.getLogger("u").info("café ☕ 東京 \U0001f600 C:\\path")
    assert lines(path)[0].endswith("INFO u: café ☕ 東京 \U0001f600 C:\\path")


@pytest.mark.parametrize(("name", "level"), [("debug", logging.DEBUG), ("info", logging.INFO),
                                             ("warn", logging.WARNING), ("warning", logging.WARNING),
                                             ("error", logging.ERROR), ("fatal", logging.CRITICAL),
                                             ("critical", logging.CRITICAL), ("WARN", logging.WARNING)])
def test_setup_takes_every_level_name_of_the_seed(tmp_path: Path, root_logger: logging.Logger,
                                                  name: str, level: int) -> None:
    logs.setup("master", "master.log", log_dir=str(tmp_path), level=name, stream=io.StringIO())
    assert root_logger.level == level


def test_stdout_only_logging_escapes_too(root_logger: logging.Logger,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logs.setup_stdout(level="warn", stream=out)
    logging.getLogger("w").info("hidden")
    logging.getLogger("w").warning("x\ny")
    [line] = out.getvalue().splitlines()
    assert line.endswith("WARNING w: x\\ny") and len(root_logger.handlers) == 1


def test_a_master_line_naming_a_presigned_url_is_redacted_in_the_log_file(
        tmp_path: Path, root_logger: logging.Logger, api: Api) -> None:
    """The master's own transition line carries the agent's reason; the file never shows a signature."""
    out = io.StringIO()
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), level="info", stream=out)
    spec = {"input": "https://bucket.example/in.mp4?X-Amz-Signature=sekrit",
            "outputs": [{"url": "rtmp://user:sekrit@127.0.0.1/live/x", "preset": "h264-480p"}]}
    job_id = api.post("/api/v1/jobs", json=spec, expect=201).get_json()["job"]["id"]
    node_id, node = register(api)
    [a] = node.post(f"/api/v1/nodes/{node_id}/claim", json={"slots": 1}).get_json()["assignments"]
    reason = "input_refused: GET https://bucket.example/in.mp4?X-Amz-Signature=sekrit -> 404 Not Found"
    node.post(f"/api/v1/jobs/{job_id}/result", json={"attempt_token": a["attempt_token"],
                                                     "outcome": "failed", "reason": reason})
    logging.getLogger("ffrtmp.master.test").info("claimed %s for %s", spec["outputs"][0]["url"], job_id)
    text = path.read_text(encoding="utf-8")
    assert f"job {job_id}: assigned -> failed (input_refused: GET https://bucket.example/in.mp4?REDACTED"\
           " -> 404 Not Found)" in text
    assert "claimed rtmp://user:REDACTED@127.0.0.1/live/x" in text
    assert "sekrit" not in text and "sekrit" not in out.getvalue()
