"""Background duties: lease expiry, offline detection and retention, once per interval farm-wide.

Each duty is a store method of ``now``; ``DutyLoop`` runs them from a thread in every gunicorn
worker, and ``store.try_duty`` lets exactly one process win each interval.

Offline detection only counts silence the master could have heard. A runner takes part in it
once it has been listening for one node timeout: since it started, and since the database last
refused writes (heartbeats could not be recorded then either). After an outage of the master
or its database, agents thus get one node timeout to heartbeat before any node is offline or
any job lost. With several masters, runners past their grace keep detecting while a restarted
one waits; after a farm-wide outage, none detects until its own grace has passed.
"""

from __future__ import annotations

import logging
import threading
import time

from ffrtmp.master.store.errors import StoreUnavailable
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings

log = logging.getLogger(__name__)


def run_duties(store: Store, settings: MasterSettings, now: float, *,
               listening_since: float) -> dict[str, object]:
    """One sweep; returns what each duty did (for tests and the debug log)."""
    done: dict[str, object] = {}
    if store.try_duty("leases", settings.duty_interval, now=now):
        done["requeued"] = store.expire_leases(now=now)
    if now - listening_since >= settings.node_timeout and \
            store.try_duty("offline", settings.duty_interval, now=now):
        done["lost"] = store.mark_offline(settings.node_timeout, now=now)
    if store.try_duty("retention", 3600, now=now):
        done["purged"] = store.purge_finished(settings.retention_days, now=now)
    return done


class DutyLoop:
    def __init__(self, store: Store, settings: MasterSettings) -> None:
        self.store, self.settings = store, settings
        self.listening_since = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffrtmp-duties", daemon=True)

    def start(self) -> None:
        self.listening_since = time.time()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # an app that was built but never served has no thread
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.duty_interval / 2):
            now = time.time()
            try:
                run_duties(self.store, self.settings, now, listening_since=self.listening_since)
            except StoreUnavailable:
                # the store logs once when writes start failing and once when they work again
                self.listening_since = now
            except Exception:
                log.exception("background duty failed; retrying next interval")
