"""The media store and the transport library against a real nginx WebDAV server (tests/webdav.py)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from ffrtmp.media.credentials import Credentials, load_credentials
from ffrtmp.media.errors import Canceled, Refused, Unavailable
from ffrtmp.media.webdav import WebDav
from tests.helpers import wait_until
from tests.webdav import WebDavStore, start_webdav


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
    webdav_store.logged("DELETE /d/e.bin 204")


def test_the_fixture_stops_and_restarts_on_the_same_port(webdav_store: WebDavStore) -> None:
    webdav_store.stop()
    try:
        requests.head(webdav_store.url + "/", timeout=5)
        raise AssertionError("a stopped store still answered")
    except requests.ConnectionError:
        pass
    webdav_store.start()
    assert requests.head(webdav_store.url + "/", auth=webdav_store.auth(), timeout=5).status_code == 200


# --- the transport library against the real store ---


def client(store: WebDavStore | None = None) -> WebDav:
    return WebDav(load_credentials(str(store.netrc)) if store else Credentials(), timeout_s=10)


def source(tmp_path: Path, size: int, name: str = "source.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_makes_the_parents_puts_a_temporary_moves_it_and_verifies(webdav_store: WebDavStore,
                                                                         tmp_path: Path) -> None:
    local = source(tmp_path, 3 * 1024 * 1024 + 17)
    moved: list[int] = []
    assert client(webdav_store).upload(local, f"{webdav_store.url}/out/a/b.mp4", tag="t1",
                                       progress=moved.append) == local.stat().st_size
    assert sha256(webdav_store.path("/out/a/b.mp4")) == sha256(local)
    assert moved[-1] == local.stat().st_size and moved == sorted(moved)
    log = webdav_store.logged("HEAD /out/a/b.mp4 200")
    assert log[log.index("MKCOL /out/ 201"):] == [
        "MKCOL /out/ 201", "MKCOL /out/a/ 201", "PUT /out/a/.b.mp4.t1.part 201",
        "HEAD /out/a/.b.mp4.t1.part 200", "MOVE /out/a/.b.mp4.t1.part 204", "HEAD /out/a/b.mp4 200"]
    assert sorted(p.name for p in webdav_store.path("/out/a").iterdir()) == ["b.mp4"]


def test_a_second_upload_overwrites_and_existing_parents_are_fine(webdav_store: WebDavStore,
                                                                  tmp_path: Path) -> None:
    webdav_store.path("/out").mkdir()
    first, second = source(tmp_path, 1000, "1.bin"), source(tmp_path, 2000, "2.bin")
    client(webdav_store).upload(first, f"{webdav_store.url}/out/x.bin", tag="a")
    client(webdav_store).upload(second, f"{webdav_store.url}/out/x.bin", tag="b")
    assert sha256(webdav_store.path("/out/x.bin")) == sha256(second)
    webdav_store.logged("MKCOL /out/ 405")


def test_the_final_url_is_absent_until_the_upload_is_complete(tmp_path: Path) -> None:
    store = start_webdav(tmp_path, throttle_bytes_per_s=2 * 1024 * 1024)
    try:
        local = source(tmp_path, 6 * 1024 * 1024)
        final = f"{store.url}/out/slow.mp4"
        moved: list[int] = []
        worker = threading.Thread(target=client(store).upload, args=(local, final),
                                  kwargs={"tag": "slow", "progress": moved.append})
        worker.start()
        wait_until(lambda: moved, 10, "the upload to be under way")
        assert worker.is_alive()
        assert client(store).size(final) is None  # HEAD final -> 404 mid-upload
        assert not store.path("/out/slow.mp4").exists()
        worker.join(30)
        assert sha256(store.path("/out/slow.mp4")) == sha256(local)
        store.logged("HEAD /out/slow.mp4 404")
    finally:
        store.stop()


def test_a_refused_upload_names_method_url_and_status(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = source(tmp_path, 100)
    url = f"{webdav_store.url}/forbidden/x.mp4"
    with pytest.raises(Refused) as refused:
        client(webdav_store).upload(local, url, tag="t")
    assert str(refused.value) == f"PUT {webdav_store.url}/forbidden/.x.mp4.t.part -> 403 Forbidden"
    assert refused.value.status == 403 and refused.value.method == "PUT"


def test_a_stopped_store_is_unavailable(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = source(tmp_path, 100)
    webdav_store.stop()
    with pytest.raises(Unavailable, match=r"MKCOL .*/out/: connection refused"):
        client(webdav_store).upload(local, f"{webdav_store.url}/out/x.mp4", tag="t")
    with pytest.raises(Unavailable, match="connection refused"):
        client(webdav_store).download(f"{webdav_store.url}/in/x.mp4", tmp_path / "x.mp4")
    assert client(webdav_store).check(webdav_store.url) == "unreachable: connection refused"


def test_download_resumes_a_part_with_a_range_request(webdav_store: WebDavStore, tmp_path: Path) -> None:
    remote = webdav_store.path("/in/big.bin")
    remote.parent.mkdir()
    remote.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    local = tmp_path / "got" / "big.bin"
    local.parent.mkdir()
    (local.parent / "big.bin.part").write_bytes(remote.read_bytes()[:1234567])  # an earlier try, cut
    moved: list[int] = []
    size = client(webdav_store).download(f"{webdav_store.url}/in/big.bin", local, progress=moved.append)
    assert size == remote.stat().st_size and sha256(local) == sha256(remote)
    assert moved[0] > 1234567 and moved[-1] == size
    assert not (local.parent / "big.bin.part").exists()
    assert webdav_store.logged("GET /in/big.bin 206")[-1] == "GET /in/big.bin 206"


def test_download_of_a_complete_part_or_a_stale_one(webdav_store: WebDavStore, tmp_path: Path) -> None:
    remote = webdav_store.path("/in/a.bin")
    remote.parent.mkdir()
    remote.write_bytes(os.urandom(4000))
    local = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(remote.read_bytes())  # complete, not yet renamed
    assert client(webdav_store).download(f"{webdav_store.url}/in/a.bin", local) == 4000
    assert webdav_store.logged("GET /in/a.bin 416")[-1] == "GET /in/a.bin 416"
    assert sha256(local) == sha256(remote)
    local.unlink()
    (tmp_path / "a.bin.part").write_bytes(os.urandom(5000))  # longer than the object: not its prefix
    with pytest.raises(Unavailable, match="not satisfiable"):
        client(webdav_store).download(f"{webdav_store.url}/in/a.bin", local)
    assert client(webdav_store).download(f"{webdav_store.url}/in/a.bin", local) == 4000
    assert sha256(local) == sha256(remote)


def test_a_missing_input_is_refused(webdav_store: WebDavStore, tmp_path: Path) -> None:
    with pytest.raises(Refused) as refused:
        client(webdav_store).download(f"{webdav_store.url}/in/none.mp4?sig=s3cr3t", tmp_path / "x")
    assert str(refused.value) == f"GET {webdav_store.url}/in/none.mp4?REDACTED -> 404 Not Found"
    assert not (tmp_path / "x").exists()


def test_logins_go_only_to_the_host_the_netrc_names(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = source(tmp_path, 10)
    with pytest.raises(Refused, match="401 Unauthorized"):
        client().upload(local, f"{webdav_store.url}/out/x.bin", tag="t")
    assert client().check(webdav_store.url) == "refused: 401"
    other_name = webdav_store.url.replace("127.0.0.1", "localhost")  # same server, a host not named
    with pytest.raises(Refused, match="401"):
        client(webdav_store).download(f"{other_name}/", tmp_path / "listing")
    assert client(webdav_store).check(webdav_store.url) == "reachable"


def test_cancel_mid_upload_leaves_no_object(tmp_path: Path) -> None:
    store = start_webdav(tmp_path, throttle_bytes_per_s=1024 * 1024)
    try:
        local = source(tmp_path, 8 * 1024 * 1024)
        cancel, moved = threading.Event(), []
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                client(store).upload(local, f"{store.url}/out/c.mp4", tag="c", progress=moved.append,
                                     cancel=cancel)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=upload)
        worker.start()
        wait_until(lambda: moved, 10, "the upload to be under way")
        cancel.set()
        worker.join(30)
        assert errors and isinstance(errors[0], Canceled), errors
        wait_until(lambda: not any(store.path("/out").iterdir()) and not any(store.path("/.tmp").iterdir()),
                   10, "no object left in the store")
    finally:
        store.stop()


def test_list_reads_the_json_index(webdav_store: WebDavStore) -> None:
    webdav_store.path("/in/sub").mkdir(parents=True)
    webdav_store.path("/in/a.mp4").write_bytes(b"12345")
    entries = {e.name: e for e in client(webdav_store).list(f"{webdav_store.url}/in")}
    assert entries["sub"].is_dir and entries["sub"].size is None
    assert not entries["a.mp4"].is_dir and entries["a.mp4"].size == 5 and entries["a.mp4"].mtime
    with pytest.raises(Refused, match="404"):
        client(webdav_store).list(f"{webdav_store.url}/none/")


def test_size_and_delete(webdav_store: WebDavStore) -> None:
    webdav_store.path("/a.bin").write_bytes(b"abc")
    media = client(webdav_store)
    assert media.size(f"{webdav_store.url}/a.bin") == 3
    media.delete(f"{webdav_store.url}/a.bin")
    media.delete(f"{webdav_store.url}/a.bin")
    assert media.size(f"{webdav_store.url}/a.bin") is None


def test_a_presigned_url_gets_one_put_with_content_md5(webdav_store: WebDavStore, tmp_path: Path) -> None:
    local = source(tmp_path, 300_000)
    url = f"{webdav_store.url}/out/p/x.mp4?X-Amz-Signature=s3cr3t&X-Amz-Expires=60"
    before = len(webdav_store.requests_log())
    assert client(webdav_store).upload(local, url, tag="unused") == 300_000
    # only this object's lines: nginx logs each request just after answering it, so a line of
    # an earlier request (the fixture's HEAD) may land after ``before`` was read
    sent = [line for line in webdav_store.logged("PUT /out/p/x.mp4 201")[before:] if "/out/p/" in line]
    assert sent == ["PUT /out/p/x.mp4 201"]
    assert sha256(webdav_store.path("/out/p/x.mp4")) == sha256(local)
    with pytest.raises(Refused) as refused:
        client(webdav_store).upload(local, f"{webdav_store.url}/forbidden/x.mp4?sig=s3cr3t", tag="t")
    assert "s3cr3t" not in str(refused.value) and str(refused.value).endswith("?REDACTED -> 403 Forbidden")


def test_an_empty_file_uploads_and_downloads(webdav_store: WebDavStore, tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    media = client(webdav_store)
    assert media.upload(empty, f"{webdav_store.url}/out/empty.bin", tag="e") == 0
    assert media.upload(empty, f"{webdav_store.url}/out/e2.bin?sig=1", tag="e") == 0
    assert webdav_store.path("/out/empty.bin").read_bytes() == b""
    assert media.download(f"{webdav_store.url}/out/empty.bin", tmp_path / "back.bin") == 0
    assert (tmp_path / "back.bin").read_bytes() == b""


class _S3Like(http.server.BaseHTTPRequestHandler):
    """Stands in for S3, which cannot run here: answers a PUT with an md5 ETag, wrong the first time."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers.get("Content-MD5", ""), body))
        etag = hashlib.md5(body if len(self.received) > 1 else b"other").hexdigest()  # noqa: S324
        self.send_response(200)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def test_a_presigned_put_whose_etag_differs_is_sent_again(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _S3Like)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = source(tmp_path, 70_000)
        url = f"http://127.0.0.1:{server.server_address[1]}/bucket/x.mp4?X-Amz-Signature=s3cr3t"
        with pytest.raises(Unavailable, match="is not the md5") as mismatch:
            client().upload(local, url, tag="t")
        assert "s3cr3t" not in str(mismatch.value)
        assert client().upload(local, url, tag="t") == 70_000
        md5 = base64.b64encode(hashlib.md5(local.read_bytes()).digest()).decode()  # noqa: S324
        assert _S3Like.received == [(md5, local.read_bytes())] * 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_part_of_an_object_that_changed_since_is_not_spliced(webdav_store: WebDavStore,
                                                                tmp_path: Path) -> None:
    remote = webdav_store.path("/in/v.bin")
    remote.parent.mkdir()
    remote.write_bytes(os.urandom(3 * 1024 * 1024))
    local = tmp_path / "v.bin"
    cancel = threading.Event()
    with pytest.raises(Canceled):  # a first try stops after its first MiB, keeping the part
        client(webdav_store).download(f"{webdav_store.url}/in/v.bin", local,
                                      progress=lambda n: cancel.set(), cancel=cancel)
    assert 0 < (tmp_path / "v.bin.part").stat().st_size < remote.stat().st_size
    assert (tmp_path / "v.bin.part.validator").read_text().startswith('"')  # nginx's strong ETag
    remote.write_bytes(os.urandom(3 * 1024 * 1024))  # same size, new content and mtime
    os.utime(remote, (remote.stat().st_atime, remote.stat().st_mtime + 5))
    client(webdav_store).download(f"{webdav_store.url}/in/v.bin", local)
    assert sha256(local) == sha256(remote)
    assert webdav_store.logged("GET /in/v.bin 200")[-1] == "GET /in/v.bin 200"  # If-Range: all of it again
    assert not (tmp_path / "v.bin.part.validator").exists()


def test_a_cut_download_resumes_under_its_validator(webdav_store: WebDavStore, tmp_path: Path) -> None:
    remote = webdav_store.path("/in/w.bin")
    remote.parent.mkdir()
    remote.write_bytes(os.urandom(3 * 1024 * 1024))
    local, cancel = tmp_path / "w.bin", threading.Event()
    with pytest.raises(Canceled):
        client(webdav_store).download(f"{webdav_store.url}/in/w.bin", local,
                                      progress=lambda n: cancel.set(), cancel=cancel)
    client(webdav_store).download(f"{webdav_store.url}/in/w.bin", local)
    assert sha256(local) == sha256(remote)
    assert webdav_store.logged("GET /in/w.bin 206")[-1] == "GET /in/w.bin 206"
