"""``ffrtmp master``: gunicorn runs in this process, so its arbiter is systemd's MAINPID.

The arbiter migrates the database, binds the API and metrics addresses, sends READY=1 itself
under ``Type=notify``, and drains in-flight requests for ``graceful_timeout`` on SIGTERM. Each
worker (``gunicorn_worker.MasterWorker``) opens its own store and builds the app from the same
settings, starts its background threads once it serves (``post_worker_init``), and runs its
shutdown handlers (LIFO) as it exits. Workers come and go (SIGHUP, a crash); the arbiter alone
owns what they share, such as the prometheus multiprocess directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from ffrtmp import logs
from ffrtmp.master.gunicorn_worker import block_stop_signals_at_fork
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.migrations import SchemaMixin
from ffrtmp.settings import MasterSettings
from ffrtmp.shutdown import Shutdown, sd_notify

if TYPE_CHECKING:
    from ffrtmp.master.context import MasterContext

log = logging.getLogger("ffrtmp.master")
# each wait for a busy database's lock asks systemd for this much more start time
MIGRATION_PATIENCE_S = 60


class RootLogger(Logger):
    """gunicorn's messages go through ffrtmp's handlers (file + stdout/journal), no access log."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self._access_log_enabled = False
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.error_log.propagate = True

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return


class MasterApplication(BaseApplication):
    def __init__(self, settings: MasterSettings) -> None:
        self.settings = settings
        self.started_at = time.time()  # in the arbiter: every worker, respawned or not, shows it
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [_bind(s.master_bind), _bind(s.metrics_bind)],
            "workers": s.workers,
            "worker_class": "ffrtmp.master.gunicorn_worker.MasterWorker",
            "threads": s.threads,
            "graceful_timeout": int(s.graceful_timeout),
            "timeout": 60,
            "keepalive": 5,
            "logger_class": RootLogger,
            "loglevel": s.log_level,
            "proc_name": "ffrtmp-master",
            "control_socket_disable": True,
            "on_starting": _on_starting,
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
            "on_exit": _on_exit,
        }
        if s.tls_cert_file:
            options.update(certfile=s.tls_cert_file, keyfile=s.tls_key_file)
        for key, value in options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        """The worker's app, over its own store (``serve`` migrated it before the fork)."""
        from ffrtmp.master.app import create_app  # in the worker: see _context_of

        shutdown = Shutdown()
        shutdown.register("logging", logging.shutdown)  # registered first: runs last
        store = open_store(self.settings.database, password_file=self.settings.database_password_file)
        shutdown.register("database", store.close)
        app = create_app(self.settings, store, shutdown=shutdown, started_at=self.started_at)
        # started by _post_worker_init, once the worker serves
        shutdown.register("background duties", _context_of(app).stop)
        return app


def _bind(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _context_of(app: Any) -> MasterContext:
    """Imported in the worker, after serve() set PROMETHEUS_MULTIPROC_DIR: prometheus-client
    picks its multiprocess mode when it is first imported."""
    from ffrtmp.master import context

    return context.of(app)


def _on_starting(server: Any) -> None:
    log.info("starting master pid=%d", os.getpid())


def _post_worker_init(worker: Any) -> None:
    """Start the worker's background threads (duties, queue watch); mark the app as shutting
    down (``/ready`` → 503, long-polls end) on the worker's SIGTERM."""
    ctx = _context_of(worker.wsgi)
    ctx.start()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        ctx.shutdown.request("SIGTERM")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def _worker_exit(server: Any, worker: Any) -> None:
    """Run the app's shutdown handlers; a worker that died while booting has no app yet."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        ctx = _context_of(app)
        ctx.shutdown.request(ctx.shutdown.reason or "worker exit")
        log.info("worker %d stopping: running shutdown handlers", worker.pid)
        ctx.shutdown.run_handlers()


def _child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated upstream


def _on_exit(server: Any) -> None:
    log.info("master stopped")


def serve(settings: MasterSettings) -> int:
    """Migrate the database, then run gunicorn until it is stopped; return the exit status."""
    try:
        store = open_store(settings.database, password_file=settings.database_password_file)
        version = (store.migrate(waiting=_migration_waits) if isinstance(store, SchemaMixin)
                   else store.migrate())
        store.close()
    except Exception as exc:  # unreachable server, unwritable file, newer schema: say which
        log.error("cannot open the database %s: %s", _redact(settings.database), exc)
        return 1
    log.info("database %s at schema version %d", _redact(settings.database), version)
    arbiter = os.getpid()
    metrics_dir = _metrics_dir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # read by workers after fork
    block_stop_signals_at_fork()
    try:
        MasterApplication(settings).run()
    finally:
        if os.getpid() == arbiter:  # a forked worker leaves through here too: never its files
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _migration_waits(exc: Exception) -> None:
    """Under systemd, a start that waits for the database lock is not a start that hangs."""
    sd_notify(f"EXTEND_TIMEOUT_USEC={int(MIGRATION_PATIENCE_S * 1e6)}\n"
              "STATUS=waiting for the database lock to migrate")


def _metrics_dir() -> Path:
    """A fresh directory for prometheus-client's per-worker files, owned by the arbiter.

    Under systemd it lives in the unit's ``RuntimeDirectory`` (``$RUNTIME_DIRECTORY``, on
    tmpfs and removed by systemd at stop even after a kill -9); elsewhere in a private
    temporary directory. Files of a previous run are stale counters, so it starts empty.
    """
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not runtime:
        return Path(tempfile.mkdtemp(prefix="ffrtmp-metrics-"))
    path = Path(runtime) / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    return path


def _redact(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(settings: MasterSettings) -> int:
    logs.setup("master", "master.log", log_dir=settings.log_dir, level=settings.log_level)
    return serve(settings)
