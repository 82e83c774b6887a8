"""A claim whose reply was lost is answered again, not claimed again (SQLite and PostgreSQL).

The agent sends one ``claim_id`` per claim message and keeps it on every retry of that
message, at any master. A claim id the node already claimed with is a replay: the master
answers with that claim's attempts that are still assigned (never started), each with a new
token (the first tokens are stored hashed, so they cannot be sent again; the old ones stop
working) and a new lease, and claims nothing more. Without a claim id a claim is what it
always was.
"""

from __future__ import annotations

import threading

import pytest

from ffrtmp.contract import JobState
from ffrtmp.master.store.errors import StateConflict
from ffrtmp.master.store.protocol import Assignment, Store

SPEC = {"input": "testsrc://?duration=1", "outputs": [{"url": "/srv/media/a.mp4", "preset": "copy"}]}


def _node(store: Store, name: str = "n1", slots: int = 4) -> str:
    node, _, _ = store.register_node(name=name, slots=slots, encoders=[], hwaccels=[], labels={},
                                     ffmpeg_version="7", agent_version="1", live_s=30, now=1000.0)
    return str(node["id"])


def _submit(store: Store, n: int) -> list[str]:
    return [store.submit_job(SPEC, queue="default", priority="medium", capabilities=[],
                             intent=None, now=1000.0)["id"] for _ in range(n)]


def _ids(assignments: list[Assignment]) -> list[str]:
    return sorted(a.job_id for a in assignments)


def _attempts(store: Store, job_id: str) -> list[dict[str, object]]:
    attempts: list[dict[str, object]] = store.get_job(job_id)["attempts"]
    return attempts


def test_a_replayed_claim_returns_the_same_jobs_with_new_tokens(store: Store) -> None:
    node = _node(store)
    _submit(store, 3)
    first = store.claim(node, 2, lease_s=30, claim_id="claim-aaaaaaaa", now=1001.0)
    again = store.claim(node, 2, lease_s=30, claim_id="claim-aaaaaaaa", now=1005.0)
    assert len(first) == 2
    assert _ids(again) == _ids(first)
    assert {(a.job_id, a.attempt) for a in again} == {(a.job_id, a.attempt) for a in first}
    assert not {a.attempt_token for a in again} & {a.attempt_token for a in first}
    assert all(a.lease_expires_at == 1035.0 for a in again), "the replay renews the lease"
    assert all(a.spec == SPEC for a in again)
    for old in first:  # the lost reply's tokens no longer start anything
        with pytest.raises(StateConflict) as refused:
            store.start(old.job_id, node, old.attempt_token, now=1006.0)
        assert refused.value.code == "stale_attempt"
    for new in again:
        assert store.start(new.job_id, node, new.attempt_token, now=1006.0)["state"] == JobState.RUNNING
    for job_id in _ids(first):
        assert len(_attempts(store, job_id)) == 1, "one attempt per job"


def test_a_replay_returns_them_even_when_the_lost_claim_emptied_the_queue(store: Store) -> None:
    node = _node(store)
    [job_id] = _submit(store, 1)
    store.claim(node, 1, lease_s=30, claim_id="claim-emptied1", now=1001.0)
    [again] = store.claim(node, 1, lease_s=30, claim_id="claim-emptied1", now=1002.0)
    assert again.job_id == job_id and again.attempt == 1


def test_attempts_already_started_are_not_replayed_and_nothing_new_is_claimed(store: Store) -> None:
    node = _node(store)
    _submit(store, 4)
    first = store.claim(node, 2, lease_s=30, claim_id="claim-started1", now=1001.0)
    started, waiting = sorted(first, key=lambda a: a.job_id)
    store.start(started.job_id, node, started.attempt_token, now=1002.0)
    [again] = store.claim(node, 2, lease_s=30, claim_id="claim-started1", now=1003.0)
    assert again.job_id == waiting.job_id
    store.start(again.job_id, node, again.attempt_token, now=1004.0)
    assert store.claim(node, 2, lease_s=30, claim_id="claim-started1", now=1005.0) == [], \
        "a claim once answered is never answered with other work"
    assert store.counts()["jobs"][JobState.QUEUED] == 2


def test_an_expired_or_canceled_assignment_is_not_replayed(store: Store) -> None:
    node = _node(store)
    _submit(store, 2)
    first = store.claim(node, 2, lease_s=5, claim_id="claim-expired1", now=1001.0)
    expired, canceled = sorted(first, key=lambda a: a.job_id)
    store.cancel_job(canceled.job_id)
    assert store.expire_leases(now=1010.0) == [expired.job_id]
    assert store.claim(node, 2, lease_s=5, claim_id="claim-expired1", now=1011.0) == []
    [fresh] = store.claim(node, 2, lease_s=5, claim_id="claim-expired2", now=1012.0)
    assert (fresh.job_id, fresh.attempt) == (expired.job_id, 2)


def test_a_new_claim_id_claims_new_jobs(store: Store) -> None:
    node = _node(store)
    _submit(store, 4)
    first = store.claim(node, 2, lease_s=30, claim_id="claim-first001", now=1001.0)
    second = store.claim(node, 2, lease_s=30, claim_id="claim-second01", now=1002.0)
    assert len(second) == 2 and not set(_ids(first)) & set(_ids(second))


def test_claim_ids_belong_to_their_node(store: Store) -> None:
    one, two = _node(store, "n1"), _node(store, "n2")
    _submit(store, 2)
    [a] = store.claim(one, 1, lease_s=30, claim_id="claim-samename", now=1001.0)
    [b] = store.claim(two, 1, lease_s=30, claim_id="claim-samename", now=1002.0)
    assert a.job_id != b.job_id


def test_without_a_claim_id_every_claim_is_new(store: Store) -> None:
    node = _node(store)
    _submit(store, 2)
    [a] = store.claim(node, 1, lease_s=30, now=1001.0)
    [b] = store.claim(node, 1, lease_s=30, now=1002.0)
    assert a.job_id != b.job_id


def test_duplicates_racing_assign_each_job_once(store: Store) -> None:
    """The same claim message arriving many times at once: one claim's jobs, each assigned once."""
    node = _node(store, slots=3)
    jobs = _submit(store, 12)
    answers: list[list[str]] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(8)

    def duplicate() -> None:
        try:
            gate.wait(10)
            answers.append(_ids(store.claim(node, 3, lease_s=30, claim_id="claim-racing01")))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=duplicate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(answers) == 8 and all(answer == answers[0] for answer in answers), answers
    assert len(answers[0]) == 3
    assigned = [j for j in jobs if store.get_job(j)["state"] == JobState.ASSIGNED]
    assert sorted(assigned) == answers[0]
    assert all(len(_attempts(store, j)) == 1 for j in assigned)
