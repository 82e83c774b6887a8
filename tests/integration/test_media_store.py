"""The media store and the transport library against a real nginx WebDAV server (tests/webdav.py)."""

from __future__ import annotations

import json

import requests

from tests.webdav import WebDavStore


def test_the_fixture_is_nginx_webdav_with_auth_and_a_json_listing(webdav_store: WebDavStore) -> None:
    url, auth = webdav_store.url, webdav_store.auth()
    assert requests.put(f"{url}/a/b/c.bin", data=b"hello", auth=auth, timeout=10).status_code == 201
    assert webdav_store.path("/a/b/c.bin").read_bytes() == b"hello"
    assert requests.request("MKCOL", f"{url}/d/", auth=auth, timeout=10).status_code == 201
    assert requests.request("MKCOL", f"{url}/d/", auth=auth, timeout=10).status_code == 405
    moved = requests.request("MOVE", f"{url}/a/b/c.bin", auth=auth, timeout=10,
                             headers={"Destination": f"{url}/d/e.bin", "Overwrite": "T"})
    assert moved.status_code == 204 and webdav_store.path("/d/e.bin").read_bytes() == b"hello"
    listing = json.loads(requests.get(f"{url}/d/", auth=auth, timeout=10).text)
    assert [(e["name"], e["type"], e["size"]) for e in listing] == [("e.bin", "file", 5)]
    assert requests.put(f"{url}/forbidden/x", data=b"1", auth=auth, timeout=10).status_code == 403
    assert requests.get(f"{url}/d/e.bin", timeout=10).status_code == 401
    assert requests.delete(f"{url}/d/e.bin", auth=auth, timeout=10).status_code == 204
    assert "DELETE /d/e.bin 204" in webdav_store.requests_log()


def test_the_fixture_stops_and_restarts_on_the_same_port(webdav_store: WebDavStore) -> None:
    webdav_store.stop()
    try:
        requests.head(webdav_store.url + "/", timeout=5)
        raise AssertionError("a stopped store still answered")
    except requests.ConnectionError:
        pass
    webdav_store.start()
    assert requests.head(webdav_store.url + "/", auth=webdav_store.auth(), timeout=5).status_code == 200
