"""The store's ``?`` placeholders in psycopg's ``%s`` style, read as SQL rather than as text.

A ``?`` is a placeholder only where SQL allows one: outside string literals, quoted names
and comments, so ``'why?'`` stays a literal. psycopg reads every ``%`` as the start of a
placeholder, inside literals too, so each one is doubled (psycopg sends ``%%`` as ``%``).
The store's SQL uses neither ``E'...'`` nor dollar quoting, which this lexer does not know.
"""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|[?%]""", re.DOTALL)


def _render(match: re.Match[str]) -> str:
    text = match.group()
    return "%s" if text == "?" else text.replace("%", "%%")


@functools.lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """``sql`` with its placeholders as ``%s``; run it with a parameter sequence (even empty)."""
    return _TOKEN.sub(_render, sql)
