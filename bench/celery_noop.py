"""The Celery side of the dispatch benchmark: an app on a Redis broker and result backend, one no-op task.

The worker process imports this module (``celery -A bench.celery_noop worker``) and reads the
Redis the bench started from ``BENCH_REDIS_URL``; the bench's producers build their own app
with ``make_app`` for each Redis. ``acks_late``: a message is acknowledged after its task ran,
the closest Celery comes to ffrtmp's durable start and result (a worker lost mid-task gets its
message again).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

TASK = "bench.noop"


def make_app(redis_url: str) -> Any:
    """Broker on database 0, results on database 1 of the same Redis; JSON, late acks."""
    app = Celery("bench", broker=f"{redis_url}/0", backend=f"{redis_url}/1", set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=3600,
    )

    # not shared: a shared task would join every app made here
    @app.task(name=TASK, shared=False)  # type: ignore[untyped-decorator]
    def noop(index: int) -> int:
        """Nothing to do: the figure is the queue's cost per job."""
        return index

    return app


app = make_app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
