"""Long-polled claims wait on one queue watch per process, on SQLite and PostgreSQL.

The app runs in-process over a real store with its background threads started, as a
gunicorn worker runs it; every wait has a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from ffrtmp.master.dispatch import TICK_S, ClaimWaiter, QueueWatch
from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings
from ffrtmp.shutdown import Shutdown
from tests.conftest import Api, make_app, register
from tests.helpers import wait_until
from tests.unit.test_api_lifecycle import submit

WAITERS = 8


class CountingMarker:
    """The store as the watch sees it: every ``queue_marker`` read is counted."""

    def __init__(self, store: Store) -> None:
        self.store, self.reads = store, 0

    def queue_marker(self) -> tuple[int, int]:
        self.reads += 1
        return self.store.queue_marker()


@pytest.fixture
def served(settings: MasterSettings) -> Iterator[Any]:
    """The app with its duties and queue watch running."""
    app = make_app(settings)
    ctx = app.extensions["ffrtmp"]
    ctx.start()
    yield app
    ctx.stop()
    ctx.store.close()


def waiting(app: Any) -> float:
    body, _ = app.extensions["ffrtmp"].metrics.render()
    line = next(x for x in body.decode().splitlines() if x.startswith("ffrtmp_claims_waiting "))
    return float(line.split()[1])


def long_poll(pool: ThreadPoolExecutor, app: Any, node: Api, node_id: str,
              wait_s: float) -> Future[Any]:
    client = Api(app.test_client(), node.token)
    return pool.submit(client.post, f"/api/v1/nodes/{node_id}/claim",
                       json={"slots": 1, "wait_s": wait_s})


def test_a_submit_wakes_a_waiting_claim_well_before_its_deadline(served: Any) -> None:
    api = Api(served.test_client())
    node_id, node = register(api)
    with ThreadPoolExecutor(1) as pool:
        reply = long_poll(pool, served, node, node_id, 30)
        wait_until(lambda: waiting(served) == 1, 10, "the claim to wait")
        submitted = time.monotonic()
        job_id = submit(api)
        [assignment] = reply.result(timeout=10).get_json()["assignments"]
        assert time.monotonic() - submitted < 5
    assert assignment["job_id"] == job_id and assignment["attempt"] == 1
    assert set(assignment) == {"job_id", "attempt", "attempt_token", "lease_s", "spec"}
    assert waiting(served) == 0


def test_a_long_poll_claims_with_its_claim_id_and_a_resend_is_answered_again(served: Any) -> None:
    """The claim a wait makes when woken carries the message's claim id: the message sent
    again (its reply was lost) gets that job, at once, however long it asks to wait."""
    api = Api(served.test_client())
    node_id, node = register(api)
    body = {"slots": 1, "wait_s": 30, "claim_id": "wait-then-claim-1"}
    with ThreadPoolExecutor(1) as pool:
        reply = pool.submit(Api(served.test_client(), node.token).post,
                            f"/api/v1/nodes/{node_id}/claim", json=body)
        wait_until(lambda: waiting(served) == 1, 10, "the claim to wait")
        job_id = submit(api)
        [lost] = reply.result(timeout=10).get_json()["assignments"]
    submit(api)  # more work queued: a resend still gets only its own claim's job
    resent = time.monotonic()
    [again] = node.post(f"/api/v1/nodes/{node_id}/claim", json=body).get_json()["assignments"]
    assert time.monotonic() - resent < 5
    assert (again["job_id"], again["attempt"]) == (lost["job_id"], 1) == (job_id, 1)
    assert again["attempt_token"] != lost["attempt_token"]


def test_shutdown_releases_every_waiting_claim_at_once(served: Any) -> None:
    api = Api(served.test_client())
    node_id, node = register(api)
    with ThreadPoolExecutor(WAITERS) as pool:
        replies = [long_poll(pool, served, node, node_id, 30) for _ in range(WAITERS // 2)]
        wait_until(lambda: waiting(served) == WAITERS // 2, 10, "the claims to wait")
        requested = time.monotonic()
        served.extensions["ffrtmp"].shutdown.request("test")
        for reply in replies:
            assert reply.result(timeout=10).get_json() == {"assignments": []}
        assert time.monotonic() - requested < 2


@pytest.fixture
def store(settings: MasterSettings) -> Iterator[Store]:
    opened = open_store(settings.database)
    opened.migrate()
    yield opened
    opened.close()


def node_of(store: Store) -> str:
    node, _, _ = store.register_node(name="node-a", slots=WAITERS, encoders=["libx264", "aac"], hwaccels=[],
                                     labels={}, ffmpeg_version="", agent_version="", live_s=60)
    return str(node["id"])


def test_waiting_claims_share_one_marker_read_per_tick(store: Store) -> None:
    counted = CountingMarker(store)
    watch = QueueWatch(counted, Shutdown())  # type: ignore[arg-type]  # reads only the marker
    claims = ClaimWaiter(store, watch, Gauge("w", "w", registry=None), lease_s=30, capacity=WAITERS)
    node_id = node_of(store)
    watch.start()
    try:
        idle = counted.reads
        time.sleep(10 * TICK_S)
        assert counted.reads == idle  # nobody waits: no reads
        with ThreadPoolExecutor(WAITERS) as pool:
            started = time.monotonic()
            found = [pool.submit(claims.wait_and_claim, node_id, 1, started + 1.0) for _ in range(WAITERS)]
            assert [f.result(timeout=10) for f in found] == [[]] * WAITERS
            elapsed = time.monotonic() - started
        # one poller per waiter would read WAITERS times as often
        assert 0 < counted.reads - idle <= elapsed / TICK_S + 2
    finally:
        watch.stop()


def test_claims_beyond_the_cap_answer_at_once(store: Store) -> None:
    registry = CollectorRegistry()
    watch = QueueWatch(store, Shutdown())
    claims = ClaimWaiter(store, watch, Gauge("w", "w", registry=registry), lease_s=30, capacity=1)
    node_id = node_of(store)
    watch.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(claims.wait_and_claim, node_id, 1, time.monotonic() + 2.0)
            wait_until(lambda: registry.get_sample_value("w") == 1, 10, "the first claim to wait")
            asked = time.monotonic()
            assert claims.wait_and_claim(node_id, 1, asked + 2.0) == []
            assert time.monotonic() - asked < 0.5
            assert first.result(timeout=10) == []
    finally:
        watch.stop()


def test_a_waiting_claim_sees_shutdown_even_without_its_watch(store: Store) -> None:
    shutdown = Shutdown()
    claims = ClaimWaiter(store, QueueWatch(store, shutdown), Gauge("w", "w", registry=None), lease_s=30,
                         capacity=2)
    node_id = node_of(store)
    threading.Timer(0.2, shutdown.request, args=("test",)).start()
    started = time.monotonic()
    assert claims.wait_and_claim(node_id, 1, started + 30) == []
    assert time.monotonic() - started < 2  # the shutdown flag is looked at without the watch
