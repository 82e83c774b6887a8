"""The media benchmark's code paths, run on a tiny source so the script cannot rot unnoticed.

The figures of such a small run mean nothing; the test checks that every scenario runs real
nginx, the real store client and real FFmpeg to the end, reports a complete and sane result,
and that the source it made is reused by the next run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType

import pytest
from bench import harness, media_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return media_bench


def test_tiny_run_reports_every_figure(bench: ModuleType, tmp_path: Path) -> None:
    profile = dataclasses.replace(bench.QUICK, name="smoke", source_mib=2, clip_size="320x240", rounds=1,
                                  deadline_s=120.0)
    cache = tmp_path / "cache"
    result = bench.run(profile, log=lambda line: None, workdir=tmp_path / "run", cache=cache)

    assert {"machine", "source", "transfer", "encode"} <= result.keys()
    assert result["source"]["bytes"] >= 2 * bench.MIB

    transfer = result["transfer"]
    assert transfer["bytes"] == result["source"]["bytes"]
    for name in ("cp", "download", "upload"):
        assert transfer[name]["mb_per_s"] > 0 and len(transfer[name]["seconds"]) == 1
    assert transfer["download"]["vs_cp"] > 0 and transfer["upload"]["vs_cp"] > 0
    assert (tmp_path / "run" / "store" / "media-root" / "bench" / "upload-0.mp4").stat().st_size \
        == result["source"]["bytes"]  # the upload really landed, whole

    assert set(result["encode"]) == set(bench.WORKLOADS)
    for modes in result["encode"].values():
        assert modes["local"]["ratio"] == 1.0
        assert modes["staged"]["median_s"] > 0 and modes["streamed"]["median_s"] > 0
        assert 0 < modes["staged"]["download_s"] < modes["staged"]["median_s"]
        assert all(modes[mode]["ffmpeg_cpu_s"] > 0 for mode in ("local", "staged", "streamed"))

    table = bench.render(result)
    assert "store download (GET)" in table and "streamed (ffmpeg reads URL)" in table
    saved = harness.write_result(result, tmp_path / "results")
    assert json.loads(saved.read_text())["encode"] == result["encode"]

    again = bench.run(profile, log=lambda line: None, workdir=tmp_path / "again", cache=cache,
                      only=("transfer",))
    assert "encode" not in again and again["source"]["bytes"] == result["source"]["bytes"]
