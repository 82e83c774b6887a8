"""Layer 1: the result record, its atomic write-once file, and its summary line."""

from __future__ import annotations

import json
import re
import signal

import pytest

from ffrtmp.wrapper import result as r
from ffrtmp.wrapper.result import Limits, Result, ResultExists

SUMMARY_RE = re.compile(r"JOB \S+.*sla=(COMPLIANT|VIOLATION).*reason=\S+.*runtime=[0-9.]+s"
                        r".*exit=[0-9]+")


def make(**overrides: object) -> Result:
    values: dict[str, object] = {
        "job_id": "job-1", "attempt": 2, "pid": 4242, "mode": "run",
        "start_time": "2026-01-06T12:00:00.000Z", "end_time": "2026-01-06T12:00:03.250Z",
        "runtime_s": 3.25, "exit_code": 0, "signal": None, "platform_sla": True,
        "reason": r.COMPLETED, "intent": "demo", "cgroup": None,
        "limits": Limits(cpu_max="50000 100000", memory_max=1 << 28, applied=True),
        "canceled": False, "progress_end": True}
    values.update(overrides)
    return Result(**values)  # type: ignore[arg-type]


def exited(code: int) -> int:
    return code << 8  # a raw wait status, as os.waitpid returns it


def killed(sig: signal.Signals) -> int:
    return int(sig)


def test_dict_round_trip() -> None:
    res = make()
    assert Result.from_dict(res.to_dict()) == res
    assert Result.from_dict(json.loads(json.dumps(res.to_dict()))) == res


def test_from_dict_ignores_unknown_keys() -> None:
    data = make().to_dict() | {"added_later": 1}
    assert Result.from_dict(data) == make()


def test_write_then_read(tmp_path) -> None:
    res = make()
    path = res.write(tmp_path)
    assert path == tmp_path / "result.json"
    assert Result.read(tmp_path) == res
    assert json.loads(path.read_text())["limits"] == {
        "cpu_max": "50000 100000", "memory_max": 1 << 28, "applied": True}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left


def test_second_write_is_refused(tmp_path) -> None:
    make().write(tmp_path)
    before = (tmp_path / "result.json").read_bytes()
    with pytest.raises(ResultExists):
        make(exit_code=1, reason=r.WORKLOAD_FAILED).write(tmp_path)
    assert (tmp_path / "result.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize(("status", "canceled", "limits", "mode", "expected"), [
    (exited(0), False, Limits(), "run", (r.COMPLETED, True)),
    (exited(42), False, Limits(), "run", (r.WORKLOAD_FAILED, True)),
    (killed(signal.SIGKILL), False, Limits(), "run", (r.WORKLOAD_SIGNALED, True)),
    (killed(signal.SIGTERM), True, Limits(), "run", (r.CANCELED, True)),
    (exited(0), False, Limits(cpu_max="1000 100000"), "run", (r.LIMITS_NOT_APPLIED, False)),
    (exited(0), False, Limits(memory_max=10, applied=True), "run", (r.COMPLETED, True)),
    (killed(signal.SIGTERM), True, Limits(memory_max=10), "run", (r.LIMITS_NOT_APPLIED, False)),
    (None, False, Limits(), "attach", (r.OBSERVED, True)),
    (None, True, Limits(), "attach", (r.CANCELED, True)),
])
def test_classify(status, canceled, limits, mode, expected) -> None:
    assert r.classify(wait_status=status, canceled=canceled, limits=limits,
                      mode=mode) == expected


def test_exit_fields() -> None:
    assert r.exit_fields(exited(3)) == (3, None)
    assert r.exit_fields(killed(signal.SIGKILL)) == (None, "SIGKILL")
    assert r.exit_fields(None) == (None, None)


def test_exit_status() -> None:
    assert make(exit_code=42).exit_status == 42
    assert make(exit_code=None, signal="SIGKILL").exit_status == 137
    assert make(exit_code=None, signal="SIGTERM").exit_status == 143
    assert make(mode="attach", exit_code=None).exit_status == 0


def test_summary_line() -> None:
    line = make(intent="two words\nand more", runtime_s=3.26).summary()
    assert line == ("JOB job-1 | attempt=2 | intent=two_words_and_more | sla=COMPLIANT | "
                    "reason=completed_successfully | runtime=3.3s | exit=0 | pid=4242")
    assert SUMMARY_RE.search(line)
    failed = make(pid=None, exit_code=127, platform_sla=False, reason=r.START_FAILED,
                  intent=None).summary()
    assert "intent=- | sla=VIOLATION | reason=start_failed" in failed
    assert failed.endswith("exit=127 | pid=-")
    assert SUMMARY_RE.search(failed)


def test_success() -> None:
    assert make(exit_code=0).success
    assert not make(exit_code=1).success
    assert make(mode="attach", exit_code=None, progress_end=True).success
    assert not make(mode="attach", exit_code=None, progress_end=None).success
    assert not make(mode="attach", exit_code=None, progress_end=True, canceled=True).success


def test_progress_end(tmp_path) -> None:
    assert r.progress_end(tmp_path) is None
    block = "frame=25\nout_time=00:00:01.000000\nspeed=5x\nprogress={}\n"
    progress = tmp_path / "progress.txt"
    progress.write_text(block.format("continue") * 2000)
    assert r.progress_end(tmp_path) is False
    with progress.open("a") as handle:
        handle.write(block.format("end"))
    assert r.progress_end(tmp_path) is True


def test_lost_track_fails_the_sla() -> None:
    lost = r.lost_track(job_id="j", attempt=1, pid=7, start_time="a", end_time="b",
                        runtime_s=1.0)
    assert (lost.reason, lost.platform_sla, lost.mode, lost.exit_code) == (
        r.LOST_TRACK, False, "attach", None)


def test_enospc_from_the_workload_is_the_platforms_failure(tmp_path) -> None:
    log = tmp_path / "output.log"
    assert r.reports_disk_full(tmp_path) is False  # no log at all
    log.write_text("Error opening input file /m/No space left on device.mp4.\n"
                   "/m/x: No space left on device: No such file or directory\n")
    assert r.reports_disk_full(tmp_path) is False  # a name is not an error
    log.write_text("av_interleaved_write_frame(): No space left on device\n"
                   "    Last message repeated 4 times\n"
                   "Error writing trailer of /m/x.mkv: No space left on device\n")
    assert r.reports_disk_full(tmp_path) is True
    failed = 1 << 8  # wait status of exit 1
    assert r.classify(wait_status=failed, canceled=False, limits=Limits(), mode="run",
                      disk_full=True) == ("disk_full", False)
    assert r.classify(wait_status=0, canceled=False, limits=Limits(), mode="run",
                      disk_full=True) == ("completed_successfully", True)
    assert r.classify(wait_status=failed, canceled=True, limits=Limits(), mode="run",
                      disk_full=True) == ("canceled", True)
    assert r.classify(wait_status=None, canceled=False, limits=Limits(), mode="attach",
                      disk_full=True) == ("disk_full", False)
    assert "disk_full" in r.SLA_FAILURES
