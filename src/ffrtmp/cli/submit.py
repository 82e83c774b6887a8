"""``ffrtmp jobs submit``: a job spec from a file, from stdin, or from flags.

Usage errors (exit 2) are found here, before any token or request is needed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ffrtmp.cli.context import CliError, Env, ExitStatus
from ffrtmp.contract import Priority

DEFAULT_PRESET = "h264-720p"


def add_submit_options(p: argparse.ArgumentParser, queues: Sequence[str]) -> None:
    p.add_argument("--spec", help="a job spec JSON file ('-' for stdin)")
    p.add_argument("--input", help="input: media-root file, URL or testsrc://?duration=…")
    p.add_argument("--output", action="append", default=[], help="output URL (repeatable)")
    p.add_argument("--preset", action="append", default=[],
                   help="preset for each --output (one preset applies to all)")
    p.add_argument("--queue", choices=queues)
    p.add_argument("--priority", choices=[priority.value for priority in Priority])
    p.add_argument("--requires", action="append", default=[], help="required capability")
    p.add_argument("--duration", type=float, help="cap the output duration (seconds)")
    p.add_argument("--intent", help="a label for the job")
    p.add_argument("--split-s", type=float, metavar="N",
                   help="split a file input into segments of about N seconds, encoded in parallel")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends")


def spec_from_args(args: argparse.Namespace, env: Env) -> dict[str, Any]:
    spec = _spec_file(args.spec, env) if args.spec else _spec_flags(args)
    if args.split_s is not None:
        if "split" in spec:
            raise CliError(f"--spec {args.spec} already has split; give it there or with --split-s",
                           ExitStatus.USAGE)
        spec["split"] = {"segment_s": args.split_s}
    return spec


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


def _spec_file(name: str, env: Env) -> dict[str, Any]:
    try:
        text = env.stdin.read() if name == "-" else Path(name).read_text("utf-8")
        spec = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(f"--spec {name}: {exc}", ExitStatus.USAGE) from None
    if not isinstance(spec, dict):
        raise CliError(f"--spec {name}: must be a JSON object", ExitStatus.USAGE)
    return spec
