"""What of a job an operator is shown: every URL without its password or query string.

The store keeps a job's spec exact, because the agent that claims it needs the real URL; the
master's job views and the CLI's tables show it through ``operator_job``. A generated test
pattern (``testsrc://?duration=…``) and a local file carry no credential, and their query is
what they mean, so they are shown as given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ffrtmp.urls import redact, redact_text

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
LOCAL_SCHEMES = frozenset({"testsrc", "file"})


def shown_url(url: str) -> str:
    """``url`` as an operator may see it: redacted unless it is local (a path, file:, testsrc:)."""
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() in LOCAL_SCHEMES:
        return url
    return redact(url)


def _text(value: Any) -> Any:
    return redact_text(value) if isinstance(value, str) else value


def _outputs(outputs: Any) -> Any:
    """A spec's or a result's outputs, each ``url`` shown; anything else is passed through."""
    if not isinstance(outputs, list):
        return outputs
    return [{**o, "url": shown_url(o["url"])} if isinstance(o, Mapping) and isinstance(o.get("url"), str)
            else o for o in outputs]


def operator_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(spec)
    if isinstance(spec.get("input"), str):
        shown["input"] = shown_url(spec["input"])
    if "outputs" in spec:
        shown["outputs"] = _outputs(spec["outputs"])
    return shown


def _result(result: Any) -> Any:
    if not isinstance(result, Mapping):
        return result
    shown = {**result, "reason": _text(result.get("reason"))} if "reason" in result else dict(result)
    if "outputs" in result:
        shown["outputs"] = _outputs(result["outputs"])
    return shown


def operator_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job dict as the API and the CLI show it: spec URLs, delivered URLs and reasons redacted."""
    shown = dict(job)
    if isinstance(job.get("spec"), Mapping):
        shown["spec"] = operator_spec(job["spec"])
    if isinstance(job.get("attempts"), list):
        shown["attempts"] = [{**a, "result": _result(a.get("result"))} if isinstance(a, Mapping)
                             else a for a in job["attempts"]]
    if isinstance(job.get("history"), list):
        shown["history"] = [{**h, "reason": _text(h.get("reason"))} if isinstance(h, Mapping)
                            else h for h in job["history"]]
    return shown


def operator_log(log: str) -> str:
    """A log tail as shown: FFmpeg prints its input and output URLs, query strings and all."""
    return redact_text(log)
