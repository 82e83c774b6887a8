"""store:///PATH: how the agent and the CLI turn it into the store's URL."""

from __future__ import annotations

import pytest

from ffrtmp.media.locations import NoStore, resolve, store_url_of


def test_a_store_url_is_the_store_plus_the_path() -> None:
    assert resolve("store:///in/a.mp4", "http://10.0.0.10:8088") == "http://10.0.0.10:8088/in/a.mp4"
    assert resolve("store:///in/a.mp4", "https://media.example/") == "https://media.example/in/a.mp4"


def test_other_urls_are_left_as_they_are() -> None:
    for url in ("http://h/a.mp4?sig=1", "https://h/a.m3u8", "file:///srv/media/a.mp4"):
        assert resolve(url, "http://store") == url
        assert resolve(url, None) == url


def test_a_store_url_without_a_store_names_the_setting() -> None:
    with pytest.raises(NoStore, match="FFRTMP_MEDIA_STORE_URL"):
        resolve("store:///in/a.mp4", None)
    with pytest.raises(NoStore):
        resolve("store:///in/a.mp4", "")


def test_a_store_url_names_no_host() -> None:
    with pytest.raises(ValueError, match="store:///PATH"):
        resolve("store://in/a.mp4", "http://store")


@pytest.mark.parametrize(("given", "expected"), [
    ("/in/x.mp4", "store:///in/x.mp4"),
    ("in/x.mp4", "store:///in/x.mp4"),
    ("store:///in/x.mp4", "store:///in/x.mp4"),
    ("//in//x.mp4", "store:///in/x.mp4"),
    ("/in/./x.mp4", "store:///in/x.mp4"),
    ("/out/", "store:///out/"),
    ("/", "store:///"),
    ("", "store:///"),
])
def test_store_url_of_a_path(given: str, expected: str) -> None:
    assert store_url_of(given) == expected


@pytest.mark.parametrize("bad", ["/in/../etc/passwd", "../x", "/in/x.mp4?sig=1", "/in/x#y", "store://h/x"])
def test_store_url_of_refuses_what_the_master_would(bad: str) -> None:
    with pytest.raises(ValueError):
        store_url_of(bad)
