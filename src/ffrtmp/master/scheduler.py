"""Background duties: lease expiry, offline detection and retention, once per interval farm-wide.

Each duty is a store method of ``now``; ``DutyLoop`` runs them from a thread in every gunicorn
worker, and ``store.try_duty`` lets exactly one process win each interval.

Offline detection only counts silence the master could have heard. A runner takes part in it
once it has been listening for one node timeout: since it started, and since the database last
refused writes (heartbeats could not be recorded then either). After an outage of the master
or its database, agents thus get one node timeout to heartbeat before any node is offline or
any job lost. With several masters, runners past their grace keep detecting while a restarted
one waits; after a farm-wide outage, none detects until its own grace has passed.

The same thread announces its master to the store (``announce_master``) at least once per
heartbeat interval, never a request: ``GET /api/v1/masters`` lists who is up, and each duty
records which master ran it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from ffrtmp import __version__
from ffrtmp.master.store.errors import StoreUnavailable
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings

log = logging.getLogger(__name__)


WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 -- compared with, never bound


def master_id(settings: MasterSettings) -> str:
    """The master's API address as ``host:port``: its bind address, or this host's name in
    place of a wildcard bind (``0.0.0.0``, ``::``), so that every master of a farm, all binding
    ``0.0.0.0:8080``, is told apart by hostname, and all workers of one master are one row."""
    host, port = settings.master_bind
    if host in WILDCARDS:
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run_duties(store: Store, settings: MasterSettings, now: float, *,
               listening_since: float, holder: str | None = None) -> dict[str, object]:
    """One sweep; returns what each duty did (for tests and the debug log)."""
    done: dict[str, object] = {}
    if store.try_duty("leases", settings.duty_interval, now=now, holder=holder):
        done["requeued"] = store.expire_leases(now=now)
    if now - listening_since >= settings.node_timeout and \
            store.try_duty("offline", settings.duty_interval, now=now, holder=holder):
        done["lost"] = store.mark_offline(settings.node_timeout, now=now)
    if store.try_duty("retention", 3600, now=now, holder=holder):
        done["purged"] = store.purge_finished(settings.retention_days, now=now)
        done["masters_forgotten"] = store.prune_masters(now - settings.retention_days * 86400)
    return done


class DutyLoop:
    def __init__(self, store: Store, settings: MasterSettings, *,
                 started_at: float | None = None) -> None:
        """``started_at``: when this master started (its gunicorn arbiter), for the masters' list."""
        self.store, self.settings = store, settings
        self.master_id = master_id(settings)
        self.started_at = time.time() if started_at is None else started_at
        self.listening_since = time.time()
        self._announced_at = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffrtmp-duties", daemon=True)

    def start(self) -> None:
        self.listening_since = time.time()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # an app that was built but never served has no thread
            self._thread.join(timeout=5)

    def announce(self, now: float) -> None:
        """Tell the store this master is up, twice per heartbeat interval (so never a whole
        interval late)."""
        if now - self._announced_at >= self.settings.heartbeat_interval / 2:
            self.store.announce_master(self.master_id, version=__version__,
                                       started_at=self.started_at, now=now)
            self._announced_at = now

    def _run(self) -> None:
        pause = min(self.settings.duty_interval, self.settings.heartbeat_interval) / 2
        while not self._stop.wait(pause):
            now = time.time()
            try:
                self.announce(now)
                run_duties(self.store, self.settings, now, listening_since=self.listening_since,
                           holder=self.master_id)
            except StoreUnavailable:
                # the store logs once when writes start failing and once when they work again
                self.listening_since = now
            except Exception:
                log.exception("background duty failed; retrying next interval")
