"""A real media store for the tests: Debian's nginx with its WebDAV module on loopback.

Configured as the ``ffrtmp_media`` role configures the store (dav methods, full put paths,
the body temp dir on the root's filesystem, the JSON listing, Basic auth on every method),
plus ``/forbidden/``, where every write answers 403, so a test can provoke a refusal.

With ``throttle_bytes_per_s``, ``url`` points at a small TCP relay in front of nginx that
forwards the client's bytes at that rate: an upload then takes long enough to be observed,
cut or killed halfway.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from tests.processes import free_port, stop_process, wait_until

USER = "ffrtmp-media"
NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    log_format requests '$request_method $uri $status';
    access_log {dir}/access.log requests;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        client_body_temp_path {root}/.tmp;
        client_max_body_size 0;
        {limit}
        dav_methods PUT DELETE MKCOL COPY MOVE;
        create_full_put_path on;
        dav_access user:rw group:r all:r;
        autoindex on;
        autoindex_format json;
        auth_basic "ffrtmp media";
        auth_basic_user_file {dir}/htpasswd;
        location /.tmp/ {{ deny all; }}
        location /forbidden/ {{
            limit_except GET HEAD {{ deny all; }}
        }}
    }}
}}
"""


class WebDavStore:
    """One nginx WebDAV server (and, when throttled, the relay in front of it)."""

    def __init__(self, base: Path, throttle_bytes_per_s: int | None = None,
                 download_bytes_per_s: int | None = None) -> None:
        self.dir = base / "webdav"
        self.root = base / "media-root"
        self.user, self.password = USER, "pw-" + _token()
        self.nginx_port = free_port()
        self.throttle = throttle_bytes_per_s
        self.download_rate = download_bytes_per_s  # nginx's limit_rate: slow GETs, for cut downloads
        self._relay: _Relay | None = None
        relay_port = free_port() if throttle_bytes_per_s else None
        self.relay_port = relay_port
        self.url = f"http://127.0.0.1:{relay_port or self.nginx_port}"
        self.netrc = self.dir / "media.netrc"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=self.password, text=True,
                                capture_output=True, check=True).stdout.strip()
        (self.dir / "htpasswd").write_text(f"{self.user}:{hashed}\n")
        self.netrc.write_text(f"machine 127.0.0.1 login {self.user} password {self.password}\n")
        self.netrc.chmod(0o600)
        limit = f"limit_rate {self.download_rate};" if self.download_rate else ""
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir, root=self.root,
                                                                port=self.nginx_port, limit=limit))

    def start(self) -> None:
        """(Re)start on the same port; return once it answers HTTP."""
        if self._proc is not None and self._proc.poll() is None:
            return
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError("nginx is required (Debian: nginx, whose core has the dav module); "
                               "tools/bootstrap.sh --test installs it")
        self._proc = subprocess.Popen([nginx, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        if self.throttle:
            assert self.relay_port is not None
            self._relay = _Relay(self.relay_port, self.nginx_port, self.throttle)
        wait_until(lambda: self._answers() or self._proc is None or self._proc.poll() is not None, 15,
                   "nginx WebDAV to answer")
        if self._proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.error_log()}")

    def _answers(self) -> bool:
        try:
            return requests.head(self.url + "/", timeout=2).status_code == 401
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Stop nginx (and the relay); return once the port refuses connections."""
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
        wait_until(lambda: not _listening(self.nginx_port), 15, "nginx WebDAV to stop listening")

    def path(self, store_path: str) -> Path:
        return self.root / store_path.lstrip("/")

    def auth(self) -> tuple[str, str]:
        return self.user, self.password

    def requests_log(self) -> list[str]:
        """The access log: one ``METHOD /uri STATUS`` line per request handled so far."""
        log = self.dir / "access.log"
        return log.read_text().splitlines() if log.exists() else []

    def logged(self, line: str, timeout: float = 10) -> list[str]:
        """The access log once it holds ``line`` (nginx logs a request just after answering it)."""
        return wait_until(lambda: self.requests_log() if line in self.requests_log() else None, timeout,
                          f"{line!r} in the store's access log")

    def error_log(self) -> str:
        log = self.dir / "error.log"
        return log.read_text() if log.exists() else ""


def start_webdav(tmp_path: Path, *, throttle_bytes_per_s: int | None = None,
                 download_bytes_per_s: int | None = None) -> WebDavStore:
    """A started store under ``tmp_path``; the caller stops it (the ``webdav_store`` fixture does)."""
    store = WebDavStore(tmp_path, throttle_bytes_per_s, download_bytes_per_s)
    store.start()
    return store


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(12)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Relay:
    """A TCP relay: client->server bytes at ``rate`` bytes/s, server->client as they come."""

    def __init__(self, port: int, upstream: int, rate: int) -> None:
        self.upstream, self.rate = upstream, rate
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="webdav-relay", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets += [client, server]
            pumps = [threading.Thread(target=self._pump, args=(client, server, self.rate), daemon=True),
                     threading.Thread(target=self._pump, args=(server, client, None), daemon=True)]
            for pump in pumps:
                pump.start()
            threading.Thread(target=self._close_after, args=(pumps, client, server), daemon=True).start()

    def _close_after(self, pumps: list[threading.Thread], *sockets: socket.socket) -> None:
        for pump in pumps:
            pump.join()
        with self.lock:
            for sock in sockets:
                if sock in self.sockets:
                    self.sockets.remove(sock)
                sock.close()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int | None) -> None:
        chunk = max(1024, min(65536, (rate or 65536 * 20) // 20))
        try:
            while data := source.recv(chunk):
                sink.sendall(data)
                if rate:  # per chunk: a kept-alive connection earns no credit while idle
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()
