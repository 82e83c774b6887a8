"""``ffrtmp jobs submit``: a job spec from a file, from stdin, or from flags.

Usage and spec errors (exit 2) are found here, before any token or request is needed: the
spec is parsed by the same ``jobspec.parse`` as the master's, with every absolute path
allowed (only the master knows its media roots, and it checks them again). Before sending,
the registered nodes are read: a job no node can run would wait in the queue without a word,
so the operator is warned (``--strict``: refused, exit 3).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ffrtmp import jobspec
from ffrtmp.cli.context import CliError, Env, ExitStatus
from ffrtmp.contract import Priority, Step
from ffrtmp.jobspec.steps import needed

DEFAULT_PRESET = "h264-720p"
# the flags a --spec file replaces: given with --spec they would be ignored, so they are refused
SPEC_FLAGS = ("input", "output", "preset", "queue", "priority", "requires", "duration", "intent")


def add_submit_options(p: argparse.ArgumentParser, queues: Sequence[str]) -> None:
    p.add_argument("--spec", help="a job spec JSON file ('-' for stdin); not with the flags "
                   "that build one (--input, --output, --preset, --queue, --priority, --requires, "
                   "--duration, --intent)")
    p.add_argument("--input", help="input: media-root file, URL or testsrc://?duration=…")
    p.add_argument("--output", action="append", default=[], help="output URL (repeatable)")
    p.add_argument("--preset", action="append", default=[],
                   help=f"preset for each --output (one preset applies to all; default "
                   f"{DEFAULT_PRESET}): {', '.join(jobspec.PRESETS)}")
    p.add_argument("--queue", choices=queues)
    p.add_argument("--priority", choices=[priority.value for priority in Priority])
    p.add_argument("--requires", action="append", default=[], help="required capability")
    p.add_argument("--duration", type=float, help="cap the output duration (seconds)")
    p.add_argument("--intent", help="a label for the job")
    p.add_argument("--split-s", type=float, metavar="N",
                   help="split a file input into segments of about N seconds, encoded in parallel")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 3) a job that no registered node can run, instead of warning")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends")


def specs_from_args(args: argparse.Namespace, env: Env) -> list[dict[str, Any]] | dict[str, Any]:
    """The job to send, or the jobs of a ``--spec`` file holding a JSON array; each checked
    as the master would check it (paths aside), an error naming its item."""
    if args.spec:
        _refuse_ignored_flags(args)
    given = _spec_file(args.spec, env) if args.spec else _spec_flags(args)
    specs = given if isinstance(given, list) else [given]
    if isinstance(given, list) and args.watch:
        raise CliError(f"--spec {args.spec} holds several jobs; --watch follows one",
                       ExitStatus.USAGE)
    for index, spec in enumerate(specs):
        item = f"--spec {args.spec}" + (f" item {index}" if isinstance(given, list) else "")
        if args.split_s is not None:
            if "split" in spec:
                raise CliError(f"{item} already has split; give it there or with --split-s",
                               ExitStatus.USAGE)
            spec["split"] = {"segment_s": args.split_s}
        parsed(spec, f"{item}: " if isinstance(given, list) else "")
    return given


def parsed(spec: dict[str, Any], where: str = "") -> jobspec.JobSpec:
    try:
        return jobspec.parse(spec, ["/"], check_filesystem=False, submitted=True)
    except jobspec.SpecError as exc:
        raise CliError(f"{where}{exc}", ExitStatus.USAGE) from None


def _refuse_ignored_flags(args: argparse.Namespace) -> None:
    given = [f"--{name}" for name in SPEC_FLAGS if getattr(args, name) not in (None, [])]
    if given:
        raise CliError(f"--spec gives the whole job: {', '.join(given)} would be ignored; "
                       "put them in the spec file, or leave out --spec", ExitStatus.USAGE)


def _spec_flags(args: argparse.Namespace) -> dict[str, Any]:
    if not args.input or not args.output:
        raise CliError("give --spec FILE, or --input and at least one --output", ExitStatus.USAGE)
    presets = args.preset or [DEFAULT_PRESET]
    if len(presets) not in (1, len(args.output)):
        raise CliError("give one --preset, or one per --output", ExitStatus.USAGE)
    if len(presets) == 1:
        presets = presets * len(args.output)
    spec: dict[str, Any] = {"input": args.input, "outputs": [
        {"url": url, "preset": preset} for url, preset in zip(args.output, presets, strict=True)]}
    for key in ("queue", "priority", "intent"):
        if getattr(args, key):
            spec[key] = getattr(args, key)
    if args.requires:
        spec["requires"] = args.requires
    if args.duration is not None:
        spec["duration_s"] = args.duration
    return spec


def _spec_file(name: str, env: Env) -> list[dict[str, Any]] | dict[str, Any]:
    """One job spec, or a non-empty JSON array of them (sent in batches: ``submit_many``)."""
    try:
        text = env.stdin.read() if name == "-" else Path(name).read_text("utf-8")
        spec = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(f"--spec {name}: {exc}", ExitStatus.USAGE) from None
    if isinstance(spec, list) and spec and all(isinstance(item, dict) for item in spec):
        return spec
    if not isinstance(spec, dict):
        raise CliError(f"--spec {name}: must be a JSON object, or a non-empty array of them",
                       ExitStatus.USAGE)
    return spec


def wanted(spec: jobspec.JobSpec) -> list[tuple[str, ...]]:
    """The capability sets some node must have: one for a job, one per kind of part for a
    split job (its segments and its audio may run on different nodes)."""
    if spec.split_s is None:
        return [spec.capabilities()]
    encodings = [(out.video, out.audio) for out in spec.outputs]
    return [needed(spec.requires, encodings, Step.SEGMENT), needed(spec.requires, encodings, Step.AUDIO)]


def unmet(spec: jobspec.JobSpec, nodes: Sequence[dict[str, Any]]) -> str | None:
    """Why no registered node can run the job, or None when one can."""
    if not nodes:
        return "no node is registered"
    for caps in wanted(spec):
        have = [set(n["encoders"]) | set(n["hwaccels"]) for n in nodes]
        if not any(set(caps) <= h for h in have):
            missing = min((sorted(set(caps) - h) for h in have), key=len)
            return (f"no registered node has {', '.join(caps)} (the closest lacks "
                    f"{', '.join(missing)})")
    return None


def check_nodes(spec: dict[str, Any], nodes: Sequence[dict[str, Any]], args: argparse.Namespace,
                env: Env) -> None:
    """Warn (or, with ``--strict``, refuse) before a job is queued that would wait forever."""
    why = unmet(parsed(spec), nodes)
    if why is None:
        return
    if args.strict:
        raise CliError(f"{why}: not submitted (--strict)", ExitStatus.UNSATISFIABLE)
    env.stderr.write(f"ffrtmp: warning: {why}; the job waits queued until such a node registers\n")


def _spec_fields() -> str:
    """The job spec's fields, from the parser's own declarations (so the help cannot drift)."""
    from ffrtmp.contract import Queue
    from ffrtmp.jobspec.limits import LIMIT_FIELDS
    from ffrtmp.jobspec.sources import INPUT_FETCH
    from ffrtmp.jobspec.spec import OUTPUT_FIELDS, TOP_FIELDS
    from ffrtmp.jobspec.split_rules import SPLIT_FIELDS

    values = {"queue": ", ".join(Queue), "priority": ", ".join(Priority),
              "input_fetch": ", ".join(INPUT_FETCH), "outputs": "[{" + ", ".join(OUTPUT_FIELDS) + "}]",
              "limits": "{" + ", ".join(LIMIT_FIELDS) + "}", "split": "{" + ", ".join(SPLIT_FIELDS) + "}"}
    return "".join(f"  {name:<12} {values.get(name, '')}\n".rstrip(" \n") + "\n" for name in TOP_FIELDS)


def _presets() -> str:
    return "".join(f"  {name:<12} " + " ".join(f"{k}={v}" for k, v in values.items()) + "\n"
                   for name, values in jobspec.PRESETS.items())


EXAMPLES = """examples:
  ffrtmp jobs submit --input file:///srv/media/in/talk.mkv \\
      --output file:///srv/media/out/talk-1080p.mp4 --preset h264-1080p \\
      --output file:///srv/media/out/talk-480p.mp4 --preset h264-480p --watch
  ffrtmp jobs submit --input 'testsrc://?duration=10' --output store:///out/t.mp4 \\
      --requires h264_nvenc --strict
  ffrtmp jobs submit --spec job.json
  ffrtmp jobs submit --spec many.json          # a JSON array of specs: one id per line
  ffrtmp jobs submit --spec - --split-s 60 < job.json
"""


def _epilog() -> str:
    from ffrtmp.cli.context import exit_table

    return (EXAMPLES + "\npresets (an output's fields override them):\n" + _presets()
            + "\njob spec fields (JSON for --spec; docs/openapi.yaml: JobSpec):\n" + _spec_fields()
            + "\n" + exit_table())


SUBMIT_EPILOG = _epilog()
