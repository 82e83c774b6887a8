"""MasterClient: one method per API call, explicit timeouts, transport-only retries, failover.

Retries apply to messages, never to work: a call is retried only when the message may not
have arrived or the master is passing through a restart (connection errors, timeouts, EOF,
502/503/504). Everything else raises ``MasterRejected`` and never moves to another master.

Several masters (``FFRTMP_MASTER_URL=a,b,…``): the client sends every message to one master,
``url``, and keeps using it while it answers. A failure the retry policy covers moves the
client to the next URL of ``urls`` (in order, wrapping round) and retries there:

- a retry to a master not yet tried in this message's cycle goes at once;
- once every master has failed in the cycle, the usual backoff (1 s doubling, capped at
  30 s) is waited, and a new cycle starts at the next master;
- a message gets at most ``retry.total`` (3) backoffs, so at most ``(total + 1) * len(urls)``
  attempts and the same waits as one master (1 + 2 + 4 s), each attempt within its timeout.

One URL is exactly the single-master policy: 4 attempts, 3 backoffs. The master in use is
the one that last answered (any answer, a refusal too); the next message goes to ``url``,
which is that master unless a message since failed everywhere (then it is where its retries
stopped). When a message is answered by a master other than the one in use, the switch is
logged once (from, to, and the failure that caused it) and reported to ``on_switch``; the
attempts in between are not logged one by one, only the backoffs, as with one master.
A long-poll claim cut off by its master is the same claim (the same ``claim_id``) asked
again of the next one, which answers it with what the first one assigned, if anything. A
failover is a retried message: starts and results carry attempt tokens and are idempotent on
every master (the node credential is farm-wide), so nothing re-runs work. The backoff waits
on the shutdown event, so SIGTERM ends it at once (immediate failovers still go).

Several starts or results go out as one batch request (``starts``/``results``), answered per
item; each item's outcome is what its single call would have returned or raised. A master
without the batch routes is sent one request per item, as before them (asked again after a
switch: the next master may have them).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from ffrtmp.shutdown import Shutdown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Named as urllib3's Retry names them; waited out on the shutdown event instead of sleep."""

    total: int = 3
    backoff_factor: float = 1.0
    backoff_max: float = 30.0
    status_forcelist: frozenset[int] = frozenset({502, 503, 504})

    def backoff(self, retry: int) -> float:
        return min(self.backoff_factor * 2.0 ** retry, self.backoff_max)


class MasterUnavailable(Exception):
    """The message could not be delivered (after retries, or cut short by shutdown)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class MasterRejected(Exception):
    """The master answered and refused: its error envelope, kept whole."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{f'HTTP {status} ' if status else ''}{code}: {message}")
        self.status, self.code, self.message = status, code, message

    @property
    def forgotten(self) -> bool:
        """The master no longer knows this node's credential or id: register again."""
        return self.status == 401 or (self.status == 404 and self.code == "node_not_found")


# One item's outcome in a batch: the single call's reply, or what that call would have raised.
Outcome = dict[str, Any] | MasterRejected | MasterUnavailable
BATCH_ITEMS = 256  # the master's limit per batch request
BATCH_BYTES = 256 << 10  # well under the master's default body limit (FFRTMP_MAX_BODY, 1 MiB)

_TRANSPORT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


# told (from URL, to URL, why) each time the client moves to another master
SwitchListener = Callable[[str, str, str], None]


class MasterClient:
    def __init__(self, urls: str | Sequence[str], *, shutdown: Shutdown, ca_file: str | None = None,
                 retry: RetryPolicy | None = None, timeout_s: float = 10.0,
                 on_switch: SwitchListener | None = None) -> None:
        self.urls = list(dict.fromkeys(u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)))
        if not self.urls:
            raise ValueError("MasterClient needs at least one master URL")
        self.url = self.urls[0]  # where the next attempt goes: the master in use
        self._in_use = self.url  # the master that answered last
        self.on_switch = on_switch
        self.shutdown = shutdown
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.session = requests.Session()
        # passed on every request: a session-wide verify loses to REQUESTS_CA_BUNDLE in requests
        self.verify: str | bool = ca_file or True
        self.credential: str | None = None
        self.node_id: str | None = None
        self.readiness: Callable[[], dict[str, Any]] | None = None  # each heartbeat's "ready"

    # --- the calls ---

    def register(self, enroll_token: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self._send("POST", "/api/v1/nodes/register", body, token=enroll_token)
        self.node_id, self.credential = data["node_id"], data["credential"]
        return data

    def facts(self, body: dict[str, Any]) -> dict[str, Any]:
        """At every start, as the saved identity: the master replaces this node's facts."""
        return self._send("PUT", f"/api/v1/nodes/{self.node_id}/facts", body)

    def heartbeat(self, running: list[dict[str, Any]], free_slots: int) -> dict[str, Any]:
        body: dict[str, Any] = {"running": running, "free_slots": free_slots}
        if self.readiness is not None:
            body["ready"] = self.readiness()
        path = f"/api/v1/nodes/{self.node_id}/heartbeat"
        try:
            return self._send("POST", path, body)
        except MasterRejected as exc:
            if "ready" not in body or exc.code != "invalid" or not exc.message.startswith("ready"):
                raise
        # a master from before readiness in heartbeats refuses the field: send them without it
        log.info("the master takes heartbeats without readiness: sending them so")
        self.readiness = None
        del body["ready"]
        return self._send("POST", path, body)

    def maintenance(self) -> dict[str, Any]:
        """On the way down after a drain: the master keeps the node in maintenance, not offline."""
        return self._send("POST", f"/api/v1/nodes/{self.node_id}/maintenance", {})

    def report_progress(self, running: list[dict[str, Any]], timeout_s: float = 2.0) -> dict[str, Any]:
        """One attempt to the master in use, never retried or failed over: progress is
        informational, and the next report a second later replaces this one."""
        headers = {"Authorization": f"Bearer {self.credential}"}
        answer = self._attempt("POST", f"/api/v1/nodes/{self.node_id}/progress",
                               {"running": running}, headers, timeout_s)
        if isinstance(answer, MasterUnavailable):
            raise answer
        return answer

    claim_ids = True  # until a master answers that it takes no claim_id
    claim_results = True  # until a master answers that a claim carries no results
    # a claim field a master from before it refuses (422 naming it, nothing claimed): the
    # flag that stops sending it, and what is logged once
    _CLAIM_FIELDS = {"claim_id": ("claim_ids", "the master takes claims without a claim id: "
                                               "sending them so"),
                     "results": ("claim_results", "the master takes results only on their "
                                                  "own route: delivering them so")}

    def claim(self, slots: int, wait_s: float,
              ended: Sequence[tuple[str, int]] = ()) -> list[dict[str, Any]]:
        """``claim_delivering`` with no results to deliver: the assignments."""
        return self.claim_delivering(slots, wait_s, ended, [])[0]

    def claim_delivering(self, slots: int, wait_s: float, ended: Sequence[tuple[str, int]],
                         results: list[tuple[str, dict[str, Any]]],
                         ) -> tuple[list[dict[str, Any]], list[Outcome] | None]:
        """Claim up to ``slots`` jobs; ``ended``: (job id, attempt) whose workload has ended
        here, results not yet delivered. ``results`` (job id, result body) go in the same
        message, recorded before the claim, when the master takes them and they fit one
        request: (assignments, their outcomes), or None for outcomes not sent (``results``).

        Each claim message gets a new ``claim_id``, kept by every retry and failover of that
        message: a master that committed the claim but whose reply never arrived answers the
        resend with the same jobs (new tokens) instead of claiming more, which would leave
        the first ones assigned to nobody until their lease ran out (its results, sent
        again, are answered as before: they are idempotent)."""
        items = [{**body, "job_id": job_id} for job_id, body in results]
        body: dict[str, Any] = {"slots": slots, "wait_s": round(wait_s, 3)}
        if ended:  # only then: a master before ``ended`` refuses the field (the loop falls back)
            body["ended"] = [{"job_id": job_id, "attempt": attempt} for job_id, attempt in ended]
        if self.claim_ids:
            body["claim_id"] = secrets.token_urlsafe(12)
        if items and self.claim_results and self.batches and len(_chunks(items)) == 1:
            body["results"] = items
        reply = self._claim_reply(body, wait_s)
        assignments: list[dict[str, Any]] = reply["assignments"]
        if "results" not in body:
            return assignments, None
        entries = reply.get("results")
        if not isinstance(entries, list) or len(entries) != len(items):
            return assignments, [MasterUnavailable("claim: the reply has not one entry per "
                                                   "result")] * len(items)
        return assignments, [_outcome(entry) for entry in entries]

    def _claim_reply(self, body: dict[str, Any], wait_s: float) -> dict[str, Any]:
        """The claim sent, again without each field a master from before it refuses."""
        path = f"/api/v1/nodes/{self.node_id}/claim"
        while True:
            try:
                return self._send("POST", path, body, timeout=self.timeout_s + wait_s)
            except MasterRejected as exc:
                refused = next((f for f in self._CLAIM_FIELDS if f in body
                                and exc.code == "invalid" and exc.message.startswith(f)), None)
                if refused is None:
                    raise
                flag, line = self._CLAIM_FIELDS[refused]
                log.info(line)
                setattr(self, flag, False)
                del body[refused]

    def start(self, job_id: str, attempt_token: str) -> dict[str, Any]:
        return self._send("POST", f"/api/v1/jobs/{job_id}/start", {"attempt_token": attempt_token})

    def result(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", f"/api/v1/jobs/{job_id}/result", body)

    def starts(self, items: list[tuple[str, str]]) -> list[Outcome]:
        """Confirm each (job id, attempt token); one request for them all."""
        return self._batch("starts", [{"job_id": j, "attempt_token": t} for j, t in items],
                           lambda item: self.start(item["job_id"], item["attempt_token"]))

    def results(self, items: list[tuple[str, dict[str, Any]]]) -> list[Outcome]:
        """Deliver each (job id, result body); as few requests as the size limits allow."""
        return self._batch("results", [{**body, "job_id": j} for j, body in items],
                           lambda item: self.result(item["job_id"], {k: v for k, v in item.items()
                                                                     if k != "job_id"}))

    # --- batches ---

    batches = True  # until a master answers that it has no batch routes

    def _batch(self, route: str, items: list[dict[str, Any]],
               single: Callable[[dict[str, Any]], dict[str, Any]]) -> list[Outcome]:
        """Per item, in order. A failure of the whole request raises (``MasterUnavailable``, or
        ``MasterRejected`` for a forgotten node), as the single call would have."""
        outcomes: list[Outcome] = []
        for chunk in _chunks(items):
            if len(chunk) == 1 or not self.batches:
                outcomes.extend(_each(chunk, single))
                continue
            try:
                reply = self._send("POST", f"/api/v1/nodes/{self.node_id}/{route}", {route: chunk})
            except MasterRejected as exc:
                if exc.forgotten or exc.status not in (404, 405, 413):
                    raise
                if exc.status != 413:  # an older master: no batch routes (404 not_found, 405)
                    log.info("the master has no %s route: one request per item", route)
                    self.batches = False
                outcomes.extend(_each(chunk, single))
                continue
            entries = reply.get(route)
            if not isinstance(entries, list) or len(entries) != len(chunk):
                raise MasterUnavailable(f"{route}: the reply has not one entry per item")
            outcomes.extend(_outcome(entry) for entry in entries)
        return outcomes

    # --- transport ---

    def _send(self, method: str, path: str, body: dict[str, Any], *, token: str | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token or self.credential}"}
        retry = tried = 0  # backoffs waited; masters failed in this cycle
        why = ""  # the first failure of this message, named when another master answers it
        while True:
            try:
                failure = self._attempt(method, path, body, headers, timeout or self.timeout_s)
            except MasterRejected as exc:
                if exc.status:  # an answer: this master is in use (a TLS failure is none)
                    self._answered(why)
                raise
            if not isinstance(failure, MasterUnavailable):
                self._answered(why)
                return failure
            why = why or f"{method} {path} to {self.url}: {failure}"
            tried += 1
            if tried < len(self.urls):  # a master not yet tried in this cycle: at once
                self._next()
                continue
            if retry >= self.retry.total:
                raise failure
            delay = self.retry.backoff(retry)
            retry, tried = retry + 1, 0
            log.warning("%s %s failed (%s); retry %d/%d in %.0fs", method, path, failure, retry,
                        self.retry.total, delay)
            if self.shutdown.wait(delay):
                raise MasterUnavailable(f"{failure} (retries stopped by shutdown)",
                                        timeout=failure.timeout)
            self._next()

    def _next(self) -> None:
        """Send the next attempt to the next master of the list (the same one with one URL)."""
        self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]

    def _answered(self, why: str) -> None:
        """The master at ``url`` answered: if it is not the one in use so far, it is now, and
        that switch is logged once and told to ``on_switch``."""
        old, self._in_use = self._in_use, self.url
        if old == self.url:
            return
        # the new master may have the batch routes, claim ids and results in claims
        self.batches = self.claim_ids = self.claim_results = True
        log.warning("switched masters: %s -> %s (%s)", old, self.url, why or "answered")
        if self.on_switch is not None:
            self.on_switch(old, self.url, why)

    def _attempt(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str],
                 timeout: float) -> dict[str, Any] | MasterUnavailable:
        try:
            response = self.session.request(method, self.url + path, json=body, headers=headers,
                                            timeout=timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:  # a certificate problem is not transient
            raise MasterRejected(0, "tls_error", str(exc)) from None
        except _TRANSPORT as exc:
            return MasterUnavailable(type(exc).__name__, timeout=isinstance(exc, requests.Timeout))
        if response.status_code in self.retry.status_forcelist:
            return MasterUnavailable(f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.ok and isinstance(data, dict):
            return dict(data)
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise MasterRejected(response.status_code, error.get("code", "http_error"),
                             error.get("message", response.reason or ""))


def _chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive runs of items within the master's item and body limits."""
    chunks: list[list[dict[str, Any]]] = []
    size = 0
    for item in items:
        cost = len(json.dumps(item))
        if not chunks or len(chunks[-1]) >= BATCH_ITEMS or size + cost > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += cost
    return chunks


def _each(items: list[dict[str, Any]],
          single: Callable[[dict[str, Any]], dict[str, Any]]) -> list[Outcome]:
    """One request per item; after a master that is away or forgot us, the rest are not sent."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append(single(item))
        except MasterUnavailable as exc:
            return outcomes + [exc] * (len(items) - len(outcomes))
        except MasterRejected as exc:
            if exc.forgotten:
                return outcomes + [exc] * (len(items) - len(outcomes))
            outcomes.append(exc)
    return outcomes


def _outcome(entry: Any) -> Outcome:
    """One entry of a batch reply as its single call would have ended (one that cannot be
    read is kept for later, as a message that may not have arrived)."""
    status = entry.get("status") if isinstance(entry, dict) else None
    if not isinstance(status, int) or isinstance(status, bool) or status >= 500:
        return MasterUnavailable(f"batch entry with status {status!r}")
    if 200 <= status < 300:
        return {k: v for k, v in entry.items() if k != "status"}
    error = entry.get("error")
    error = error if isinstance(error, dict) else {}
    return MasterRejected(status, str(error.get("code", "http_error")), str(error.get("message", "")))
