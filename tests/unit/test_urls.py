"""Redacting URLs in free text keeps the text around them: punctuation after a URL is prose."""

from __future__ import annotations

import pytest

from ffrtmp.urls import redact_text


@pytest.mark.parametrize(("text", "shown"), [
    ("cannot open the database postgresql://***@db:5432/farm?sslmode=verify-full: no route",
     "cannot open the database postgresql://***@db:5432/farm?REDACTED: no route"),
    ("GET https://s.example/a.mp4?sig=sekrit, then PUT https://s.example/b.mp4?sig=sekrit.",
     "GET https://s.example/a.mp4?REDACTED, then PUT https://s.example/b.mp4?REDACTED."),
    ("(refused: rtmp://u:sekrit@h/live/x)", "(refused: rtmp://u:REDACTED@h/live/x)"),
    ("see https://docs.example/page.html; done", "see https://docs.example/page.html; done"),
])
def test_punctuation_after_a_url_stays_after_the_redacted_url(text: str, shown: str) -> None:
    assert redact_text(text) == shown
    assert "sekrit" not in redact_text(text)
