"""The log file survives logrotate (rename + create, no copytruncate, no reload) without a
``stat()`` per record: the path is checked at most once a second, and a record written in
that window lands in the renamed file, which logrotate leaves in place (``delaycompress``)."""

from __future__ import annotations

import io
import itertools
import logging
import os
import time
from pathlib import Path

import pytest

from ffrtmp import logs
from tests.processes import wait_until


def messages(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split(": ", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]


def test_after_a_rename_lines_reach_the_new_file_and_none_is_lost(
        tmp_path: Path, root_logger: logging.Logger) -> None:
    path = logs.setup("worker", "agent.log", log_dir=str(tmp_path), stream=io.StringIO())
    log = logging.getLogger("ffrtmp.agent")
    log.info("before rotation")
    rotated = path.with_name("agent.log.1")
    path.rename(rotated)  # what logrotate does without copytruncate
    path.touch()  # logrotate's ``create``
    counter = itertools.count()

    def write_until_the_new_file_has_lines() -> bool:
        log.info("line %d", next(counter))
        return bool(messages(path))

    wait_until(write_until_the_new_file_has_lines, 10, "a line in the re-created file", interval=0.01)
    written = [f"line {i}" for i in range(next(counter))]
    old, new = messages(rotated), messages(path)
    assert old[0] == "before rotation"
    assert old[1:] + new == written, "every line once, in order, across the two files"
    log.info("last")
    assert messages(path)[-1] == "last"


def test_a_deleted_file_is_recreated_within_the_check_interval(
        tmp_path: Path, root_logger: logging.Logger) -> None:
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), stream=io.StringIO())
    log = logging.getLogger("m")
    log.info("one")
    path.unlink()
    counter = itertools.count()

    def write_until_recreated() -> bool:
        log.info("two %d", next(counter))
        return path.exists()

    wait_until(write_until_recreated, 10, "the file to be re-created", interval=0.01)
    [line] = messages(path)
    assert line.startswith("two ")


def test_the_path_is_checked_at_most_once_a_second(tmp_path: Path, root_logger: logging.Logger,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = logs.setup("master", "master.log", log_dir=str(tmp_path), stream=io.StringIO())
    stats: list[float] = []
    real_stat = os.stat

    def counting_stat(target: object, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(target) == str(path):  # type: ignore[call-overload]
            stats.append(time.monotonic())
        return real_stat(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting_stat)
    started = time.monotonic()
    for i in range(2000):
        logging.getLogger("m").info("line %d", i)
    elapsed = time.monotonic() - started
    assert len(stats) <= elapsed + 1, (len(stats), elapsed)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stats))
    assert len(messages(path)) == 2000
