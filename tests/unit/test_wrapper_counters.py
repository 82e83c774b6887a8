"""Layer 2: on-disk counters and the violations ring, shared by concurrent wrappers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ffrtmp.wrapper import counters
from ffrtmp.wrapper import result as r
from ffrtmp.wrapper.result import Result


def make(job_id: str, *, exit_code: int | None = 0, sla: bool = True,
         mode: str = "run", progress_end: bool | None = None) -> Result:
    reason = r.COMPLETED if sla else r.START_FAILED
    return Result(job_id=job_id, attempt=1, pid=100, mode=mode,  # type: ignore[arg-type]
                  start_time="2026-01-06T12:00:00.000Z", end_time="2026-01-06T12:00:01.000Z",
                  runtime_s=1.0, exit_code=exit_code, signal=None, platform_sla=sla,
                  reason=reason, progress_end=progress_end)


def _record_many(state_dir: str, worker: int, count: int) -> None:
    for i in range(count):
        counters.record(Path(state_dir), make(f"w{worker}-{i}", exit_code=i % 2,
                                              sla=i % 5 != 0))


def test_empty_state(tmp_path) -> None:
    assert counters.read_counters(tmp_path) == dict.fromkeys(counters.COUNTER_NAMES, 0)
    assert counters.read_violations(tmp_path) == []


def test_record_counts_each_job_once(tmp_path) -> None:
    counters.record(tmp_path, make("ok"))
    counters.record(tmp_path, make("bad-input", exit_code=1))
    counters.record(tmp_path, make("no-start", exit_code=127, sla=False))
    counters.record(tmp_path, make("adopted", exit_code=None, mode="attach", progress_end=True))
    assert counters.read_counters(tmp_path) == {
        "jobs_total": 4, "jobs_success": 2, "jobs_failed": 2,
        "platform_sla_met": 3, "platform_sla_failed": 1}
    (violation,) = counters.read_violations(tmp_path)
    assert violation == {"job_id": "no-start", "attempt": 1, "reason": r.START_FAILED,
                         "time": "2026-01-06T12:00:01.000Z", "exit_code": 127, "pid": 100,
                         "runtime_s": 1.0}


def test_concurrent_records_are_not_lost(tmp_path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert counters.read_counters(tmp_path) == {
        "jobs_total": 100, "jobs_success": 52, "jobs_failed": 48,
        "platform_sla_met": 80, "platform_sla_failed": 20}
    assert len(counters.read_violations(tmp_path)) == 20


def test_ring_keeps_the_newest_fifty_first(tmp_path) -> None:
    for i in range(60):
        counters.record(tmp_path, make(f"v{i}", sla=False))
    ring = counters.read_violations(tmp_path)
    assert [v["job_id"] for v in ring] == [f"v{i}" for i in range(59, 9, -1)]
    assert counters.read_counters(tmp_path)["platform_sla_failed"] == 60


def test_corrupt_counters_are_set_aside(tmp_path) -> None:
    counters.counters_path(tmp_path).parent.mkdir(parents=True)
    counters.counters_path(tmp_path).write_text("{not json")
    counters.record(tmp_path, make("after"))
    assert counters.read_counters(tmp_path)["jobs_total"] == 1
    aside = list(counters.counters_path(tmp_path).parent.glob("counters.json.corrupt-*"))
    assert len(aside) == 1


def test_files_are_plain_json(tmp_path) -> None:
    counters.record(tmp_path, make("x", sla=False))
    assert json.loads(counters.counters_path(tmp_path).read_text())["jobs_total"] == 1
    assert json.loads(counters.violations_path(tmp_path).read_text())[0]["job_id"] == "x"


def test_prometheus_text_parses(tmp_path) -> None:
    counters.record(tmp_path, make("a"))
    counters.record(tmp_path, make("b", exit_code=1, sla=False))
    text = counters.prometheus_text(tmp_path)
    for name in ("wrapper_jobs_total", "wrapper_jobs_success", "wrapper_jobs_failed",
                 "wrapper_platform_sla_met", "wrapper_platform_sla_failed"):
        assert f"# TYPE {name} counter\n" in text
        assert f"# HELP {name} " in text
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "counter"
        for sample in family.samples:
            samples[sample.name] = sample.value
    # The parser names every counter sample <family>_total, the OpenMetrics way.
    assert samples == {
        "wrapper_jobs_total": 2.0, "wrapper_jobs_success_total": 1.0,
        "wrapper_jobs_failed_total": 1.0, "wrapper_platform_sla_met_total": 1.0,
        "wrapper_platform_sla_failed_total": 1.0}
    exposed = [line.split()[0] for line in text.splitlines() if not line.startswith("#")]
    assert exposed == ["wrapper_jobs_total", "wrapper_jobs_success", "wrapper_jobs_failed",
                       "wrapper_platform_sla_met", "wrapper_platform_sla_failed"]
