"""SQL text read as SQL, not searched as a string: placeholders and statement boundaries.

A ``?`` is a placeholder, and a ``;`` ends a statement, only where SQL allows: outside
string literals, quoted names and comments, so ``'why?'`` or ``'a;b'`` stays a literal.
The store's SQL uses neither ``E'...'`` nor dollar quoting, which this lexer does not know.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum

_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|[?%;]""", re.DOTALL)


def _render(match: re.Match[str]) -> str:
    text = match.group()
    if text == "?":
        return "%s"
    return text.replace("%", "%%")


def in_list(states: Iterable[StrEnum]) -> str:
    """A contract set as an SQL ``IN`` list; its members are fixed names, never client text."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


ID_CHUNK = 500  # values per ``IN (?, …)`` list, far below SQLite's and PostgreSQL's limits


def in_chunks(ids: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """``ids`` in slices of ``ID_CHUNK``, each with its ``(?, ?, …)`` placeholder list."""
    for start in range(0, len(ids), ID_CHUNK):
        chunk = list(ids[start:start + ID_CHUNK])
        yield chunk, f"({', '.join('?' * len(chunk))})"


@functools.lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """``sql`` with its placeholders as psycopg's ``%s``; run it with a parameter sequence
    (even an empty one). psycopg reads every ``%`` as a placeholder, inside literals too, so
    each one is doubled (psycopg sends ``%%`` as ``%``)."""
    return _TOKEN.sub(_render, sql)


def statements(script: str) -> list[str]:
    """The non-empty statements of a script, split at each ``;`` that ends one."""
    ends = [m.start() for m in _TOKEN.finditer(script) if m.group() == ";"]
    parts = [script[start + 1:end] for start, end in zip([-1, *ends], [*ends, len(script)], strict=True)]
    return [part for part in parts if part.strip()]
