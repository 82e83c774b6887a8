"""``jobs submit`` against a real master (gunicorn, SQLite): the requirement check, ``--spec``
with flags it would ignore, the exit status of every kind of refusal, and the help text.

The CLI runs as ``python -m ffrtmp``, a real process, so the exit statuses are the ones a
script sees; nodes are registered through the real enrollment API with the encoders chosen
by each test (a capability name unique to the test, so nodes of other tests never match).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from ffrtmp import jobspec
from ffrtmp.cli.context import EXIT_MEANINGS, ExitStatus
from tests.conftest import ENROLL_TOKEN, OPERATOR_TOKEN, MasterProcess
from tests.processes import clean_env

TESTSRC = "testsrc://?duration=2&size=320x240&rate=25"
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Done:
    status: int
    out: str
    err: str


@pytest.fixture
def cli(master: MasterProcess, tmp_path: Path) -> Any:
    env = {**clean_env(), "FFRTMP_MASTER_URL": master.url, "FFRTMP_API_TOKEN": OPERATOR_TOKEN,
           "FFRTMP_CONFIG": str(tmp_path / "none")}

    def run(*argv: str, stdin: str = "") -> Done:
        proc = subprocess.run([sys.executable, "-m", "ffrtmp", *argv], env=env, input=stdin,
                              capture_output=True, text=True, timeout=120, check=False)
        return Done(proc.returncode, proc.stdout, proc.stderr)

    return run


def session(master: MasterProcess, token: str = OPERATOR_TOKEN) -> requests.Session:
    s = master.session(token)
    s.headers["Connection"] = "close"
    return s


def register(master: MasterProcess, encoders: list[str]) -> str:
    reply = session(master, ENROLL_TOKEN).post(
        master.url + "/api/v1/nodes/register", timeout=10,
        json={"name": f"n-{secrets.token_hex(3)}", "slots": 1, "encoders": encoders})
    reply.raise_for_status()
    return str(reply.json()["node_id"])


def jobs(master: MasterProcess) -> list[str]:
    listed = session(master).get(master.url + "/api/v1/jobs", params={"limit": 500}, timeout=10)
    return [j["id"] for j in listed.json()["jobs"]]


def test_a_job_no_node_can_run_is_queued_with_a_warning_and_strict_refuses_it(
        cli: Any, master: MasterProcess) -> None:
    rare = f"enc_{secrets.token_hex(4)}"
    register(master, ["libx264", "aac"])
    argv = ["jobs", "submit", "--input", TESTSRC, "--output", "rtmp://127.0.0.1/live/x",
            "--preset", "h264-480p", "--requires", rare]
    before = jobs(master)
    strict = cli(*argv, "--strict")
    assert strict.status == ExitStatus.UNSATISFIABLE == 3, strict
    assert f"no registered node has aac, {rare}, libx264 (the closest lacks {rare})" in strict.err
    assert "not submitted (--strict)" in strict.err and strict.out == ""
    assert jobs(master) == before, "--strict queued nothing"
    warned = cli(*argv)
    assert warned.status == 0, warned
    assert warned.err.startswith(f"ffrtmp: warning: no registered node has aac, {rare}, libx264")
    job_id = warned.out.strip()
    assert job_id in jobs(master)
    register(master, ["libx264", "aac", rare])
    quiet = cli(*argv, "--strict")
    assert quiet.status == 0 and quiet.err == "", quiet


def test_a_split_job_needs_a_node_for_its_video_and_one_for_its_audio(cli: Any, master: MasterProcess,
                                                                      tmp_path: Path) -> None:
    video, audio = f"v_{secrets.token_hex(3)}", f"a_{secrets.token_hex(3)}"
    register(master, [video])
    spec = {"input": "file:///srv/media/in/long.mkv",
            "outputs": [{"url": "file:///srv/media/out/long.mp4", "preset": "h264-480p",
                         "video_codec": video, "audio_codec": audio}]}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(spec))
    refused = cli("jobs", "submit", "--spec", str(path), "--split-s", "60", "--strict")
    assert refused.status == 3 and f"no registered node has {audio}" in refused.err, refused
    register(master, [audio])  # the audio part may run on another node than the segments
    spec["outputs"][0]["url"] = "file:///nowhere/long.mp4"  # outside the master's media roots
    path.write_text(json.dumps(spec))
    judged = cli("jobs", "submit", "--spec", str(path), "--split-s", "60", "--strict")
    assert judged.status == 2 and "(HTTP 422)" in judged.err, judged  # the master's refusal


def test_spec_with_flags_it_would_ignore_is_refused(cli: Any, master: MasterProcess, tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"input": TESTSRC, "outputs": [{"url": "rtmp://127.0.0.1/live/x"}]}))
    before = jobs(master)
    for flags in (["--input", TESTSRC], ["--output", "rtmp://h/x"], ["--preset", "copy"],
                  ["--queue", "batch"], ["--priority", "high"], ["--requires", "x"],
                  ["--duration", "3"], ["--intent", "demo"]):
        run = cli("jobs", "submit", "--spec", str(path), *flags)
        assert run.status == 2, (flags, run)
        assert run.err == (f"ffrtmp: --spec gives the whole job: {flags[0]} would be ignored; "
                           "put them in the spec file, or leave out --spec\n")
    both = cli("jobs", "submit", "--spec", "-", "--input", TESTSRC, "--intent", "x", stdin="{}")
    assert "--input, --intent would be ignored" in both.err
    assert jobs(master) == before


def test_spec_errors_exit_2_naming_the_field_before_any_request(cli: Any, master: MasterProcess,
                                                                tmp_path: Path) -> None:
    before = jobs(master)
    preset = cli("jobs", "submit", "--input", TESTSRC, "--output", "rtmp://127.0.0.1/live/x",
                 "--preset", "h264-4k")
    assert preset.status == 2
    assert preset.err.startswith("ffrtmp: outputs[0].preset: must be one of h264-1080p,")
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"input": TESTSRC, "outputs": [], "colour": "red"}))
    unknown = cli("jobs", "submit", "--spec", str(path))
    assert unknown.status == 2 and unknown.err.count("\n") == 1, unknown
    assert cli("jobs", "submit", "--spec", str(tmp_path / "missing.json")).status == 2
    assert cli("jobs", "submit", "--spec", "-", stdin="[1]").status == 2
    assert jobs(master) == before
    state = cli("jobs", "list", "--state", "sleeping")  # the master's 422 is a usage error too
    assert state.status == 2 and state.err.startswith("ffrtmp: state: must be one of"), state


def test_a_spec_file_holding_an_array_submits_every_job_in_order(cli: Any, master: MasterProcess,
                                                                   tmp_path: Path) -> None:
    register(master, ["libx264", "aac"])
    specs = [{"input": TESTSRC, "outputs": [{"url": f"rtmp://127.0.0.1/live/{i}", "preset": "copy"}],
              "intent": str(i)} for i in range(300)]  # more than one batch request takes
    path = tmp_path / "many.json"
    path.write_text(json.dumps(specs))
    done = cli("jobs", "submit", "--spec", str(path))
    assert done.status == 0 and done.err == "", done
    ids = done.out.split()
    assert len(ids) == len(set(ids)) == 300
    listed = session(master).get(master.url + "/api/v1/jobs", params={"limit": 500}, timeout=10)
    intents = {j["id"]: j["intent"] for j in listed.json()["jobs"]}
    assert [intents[i] for i in ids] == [str(i) for i in range(300)]
    shown = cli("jobs", "submit", "--spec", "-", "--json", stdin=json.dumps(specs[:2]))
    assert [e["status"] for e in json.loads(shown.out)["jobs"]] == [201, 201], shown


def test_an_array_with_a_bad_spec_submits_nothing_and_names_the_item(cli: Any, master: MasterProcess,
                                                                    tmp_path: Path) -> None:
    good = {"input": TESTSRC, "outputs": [{"url": "rtmp://127.0.0.1/live/x", "preset": "copy"}]}
    before = jobs(master)
    bad = cli("jobs", "submit", "--spec", "-", stdin=json.dumps([good, {**good, "queue": "nope"}]))
    assert bad.status == 2 and bad.err.startswith("ffrtmp: --spec - item 1: queue: must be one of"), bad
    watched = cli("jobs", "submit", "--spec", "-", "--watch", stdin=json.dumps([good, good]))
    assert watched.status == 2 and "--watch follows one" in watched.err, watched
    # outside the master's media roots: the CLI lets it through, the master refuses it
    outside = {"input": TESTSRC, "outputs": [{"url": "file:///nowhere/x.mp4", "preset": "copy"}]}
    mixed = cli("jobs", "submit", "--spec", "-", stdin=json.dumps([good, outside]))
    assert mixed.status == 2, mixed
    assert "--spec - item 1 refused:" in mixed.err and "(HTTP 422)" in mixed.err
    assert len(mixed.out.split()) == 1 and len(jobs(master)) == len(before) + 1


def test_help_lists_examples_presets_spec_fields_and_exit_statuses(cli: Any) -> None:
    run = cli("jobs", "submit", "--help")
    assert run.status == 0
    text = run.out
    assert "examples:\n  ffrtmp jobs submit --input" in text
    presets = text.split("presets (")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in presets] == list(jobspec.PRESETS)
    assert "video_codec=libx264 video_bitrate=5000k size=1920x1080" in presets[0]
    fields = text.split("job spec fields")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in fields] == list(jobspec._TOP_FIELDS)
    assert any(line.split()[0] == "outputs" and "encoder_preset" in line for line in fields)
    for status in ExitStatus:
        assert f"{int(status):>3}  {EXIT_MEANINGS[status]}" in text
    top = cli("--help").out
    assert "examples:" in top and "ffrtmp completion bash" in top and "exit statuses:" in top


def test_readme_documents_every_exit_status() -> None:
    readme = README.read_text()
    for status in ExitStatus:
        assert f"| {int(status)} | {EXIT_MEANINGS[status]} |" in readme, status
