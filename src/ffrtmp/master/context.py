"""The long-lived objects of one master process, which the views reach through the app.

The app factory builds them and starts nothing: the server's worker hooks ``start()`` the
background threads (duties, queue watch) once the worker runs and ``stop()`` them as it exits,
so building an app (a test client, a tool) never spawns threads.
"""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app

from ffrtmp.master.dispatch import ClaimWaiter, QueueWatch
from ffrtmp.master.metrics import MasterMetrics
from ffrtmp.master.scheduler import DutyLoop
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings
from ffrtmp.shutdown import Shutdown

EXTENSION = "ffrtmp"  # the key in ``app.extensions``


class MasterContext:
    """Kept in ``app.extensions["ffrtmp"]``."""

    def __init__(self, settings: MasterSettings, store: Store, shutdown: Shutdown, *,
                 started_at: float | None = None) -> None:
        self.settings, self.store, self.shutdown = settings, store, shutdown
        self.metrics = MasterMetrics(store)
        self.duties = DutyLoop(store, settings, started_at=started_at)
        self.queue_watch = QueueWatch(store, shutdown)
        self.claims = ClaimWaiter(store, self.queue_watch, self.metrics.claims_waiting,
                                  lease_s=settings.lease, capacity=max(1, settings.threads - 4))

    def timing(self) -> dict[str, float]:
        return {"heartbeat_interval_s": self.settings.heartbeat_interval,
                "node_timeout_s": self.settings.node_timeout}

    def start(self) -> None:
        """Start the background threads: lease and offline duties, the queue watch."""
        self.duties.start()
        self.queue_watch.start()

    def stop(self) -> None:
        self.queue_watch.stop()
        self.duties.stop()


def of(app: Flask) -> MasterContext:
    return cast(MasterContext, app.extensions[EXTENSION])


def current() -> MasterContext:
    """The context of the app serving the current request."""
    return of(current_app)
