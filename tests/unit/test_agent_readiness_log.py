"""The agent's readiness says a change once: the start is no change, whatever is not known yet.

A real ``Readiness`` over a real work dir; the media store's status and the heartbeat outcome
are set as the media probe and the loop set them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ffrtmp.agent.probes import Readiness


class Media:
    def __init__(self, status: str) -> None:
        self.status = status

    def __call__(self) -> str:
        return self.status


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ffrtmp.agent"]


def _registered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> tuple[Media, Readiness]:
    """An agent past its start: polled before anything answered, then its first heartbeat."""
    media = Media("unknown")
    readiness = Readiness(str(tmp_path), media=media)
    caplog.set_level(logging.INFO, "ffrtmp.agent")
    readiness.snapshot()
    readiness.record_heartbeat("reachable")
    return media, readiness


def test_a_start_before_the_first_heartbeat_and_media_probe_logs_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    media = Media("unknown")  # a store configured, not probed yet
    readiness = Readiness(str(tmp_path), media=media)
    caplog.set_level(logging.INFO, "ffrtmp.agent")
    assert readiness.snapshot()[0] is False  # not registered, media unknown: starting
    readiness.record_heartbeat("reachable")
    assert readiness.snapshot()[0] is False  # the media probe has not answered yet
    media.status = "reachable"
    assert readiness.snapshot()[0] is True
    assert _said(caplog) == []


def test_a_store_that_goes_away_and_back_is_said_once_each_way(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    media, readiness = _registered(tmp_path, caplog)
    media.status = "reachable"
    readiness.snapshot()
    media.status = "unreachable: connection refused"
    for _ in range(3):
        assert readiness.snapshot()[0] is False
    media.status = "reachable"
    for _ in range(3):
        assert readiness.snapshot()[0] is True
    assert _said(caplog) == ["not ready: no new jobs until it clears: media unreachable: connection refused",
                             "ready again: claiming jobs"]


def test_a_store_down_at_start_is_warned_once_it_is_known(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    media, readiness = _registered(tmp_path, caplog)
    media.status = "unreachable: connection refused"
    readiness.snapshot()
    readiness.snapshot()
    assert _said(caplog) == ["not ready: no new jobs until it clears: media unreachable: connection refused"]
