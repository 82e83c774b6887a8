"""``ffrtmp agent``: wiring, re-adoption at start, the loop, and the bounded shutdown.

Shutdown follows the seed: stop claiming, wait up to FFRTMP_SHUTDOWN_TIMEOUT for running jobs
(still heartbeating and delivering results), stop the heartbeat, run the shutdown handlers
(metrics server, then logging), exit 0. Jobs still running keep running; the next agent
start re-adopts them.

Several masters (``FFRTMP_MASTER_URL=a,b``) share one client, which fails over between them
(``agent/client.py``): the heartbeat therefore succeeds while any master answers, so
``/ready``'s ``master`` check (the last heartbeat's outcome) is ``reachable`` then, and
``worker_master_info{url}`` is 1 for the master in use, 0 for the others.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ffrtmp import __version__, logs
from ffrtmp.agent.cgroup import enter_agent_leaf
from ffrtmp.agent.client import MasterClient, MasterRejected, MasterUnavailable
from ffrtmp.agent.ffmpeg import Capabilities, discover_capabilities
from ffrtmp.agent.jobs import JobTable
from ffrtmp.agent.loop import AgentLoop, Forgotten
from ffrtmp.agent.media_plane import MediaPlane
from ffrtmp.agent.metrics import WorkerMetrics
from ffrtmp.agent.probes import Readiness
from ffrtmp.agent.server import AgentApp, start_server
from ffrtmp.config import BY_NAME, EX_CONFIG, ConfigError
from ffrtmp.files import PRIVATE, write_json_atomic
from ffrtmp.layout import StateDir
from ffrtmp.logs import fields
from ffrtmp.media.credentials import Credentials, load_credentials
from ffrtmp.settings import AgentSettings
from ffrtmp.shutdown import Shutdown, Watchdog, sd_notify

log = logging.getLogger("ffrtmp.agent")


class Identity:
    """This node's id and credential, kept in the state dir (0600) across restarts.

    The credential is who this node is. Every start presents it with the node's facts (slots,
    encoders, versions), so the master keeps those of the latest start, not of the first.
    ``registered`` is true once the master has accepted this process's facts or enrollment.
    """

    def __init__(self, state_dir: str) -> None:
        self.path = StateDir(Path(state_dir)).node_json
        self.registered = False

    def load(self, client: MasterClient) -> None:
        """Whatever master it came from: a master that does not know it treats it as none."""
        try:
            data = json.loads(self.path.read_text())
            node_id, credential = data["node_id"], data["credential"]
        except (OSError, ValueError, TypeError, KeyError):
            return
        if isinstance(node_id, str) and isinstance(credential, str):
            client.node_id, client.credential = node_id, credential

    def save(self, client: MasterClient) -> None:
        write_json_atomic(self.path, {"node_id": client.node_id, "credential": client.credential,
                                      "master_url": client.url}, mode=PRIVATE)
        self.registered = True

    def forget(self, client: MasterClient) -> None:
        client.node_id = client.credential = None
        self.path.unlink(missing_ok=True)
        self.registered = False


def _capabilities() -> Capabilities:
    try:
        return discover_capabilities()
    except (FileNotFoundError, OSError) as exc:
        log.error("ffmpeg not usable (%s): registering without encoders; not ready", exc)
        return Capabilities(ffmpeg_version="", encoders=(), hwaccels=())


def _media_credentials(path: str | None) -> Credentials:
    """The store logins; a file that is named but unusable stops the agent at start."""
    try:
        return load_credentials(path)
    except ValueError as exc:
        raise ConfigError(BY_NAME["media_credentials_file"].env, path, str(exc)) from None


def _registration_refused(exc: MasterRejected) -> bool:
    """A refusal that restarting cannot fix: log it once, clearly, for the exit status 78."""
    if exc.status == 401:
        log.error("the master refused the enrollment token (FFRTMP_ENROLL_TOKEN_FILE): %s", exc)
    elif exc.code == "node_name_in_use":
        log.error("refused: another node holds this node's name (FFRTMP_NODE_NAME): %s", exc.message)
    else:
        return False
    return True


class PromisingAdapter(HTTPAdapter):
    """Each HTTP attempt promises the watchdog to be back within its connect and read timeouts."""

    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float, float] | tuple[float, None] | None = None,
             verify: bool | str = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.watchdog.expect((connect or 0.0) + (read or 0.0))
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                            proxies=proxies)


class Agent:
    def __init__(self, settings: AgentSettings, shutdown: Shutdown) -> None:
        self.settings, self.shutdown = settings, shutdown
        for directory in (settings.state_dir, settings.work_dir):
            Path(directory).mkdir(parents=True, exist_ok=True)
        self.readiness = Readiness(settings.work_dir, media_roots=settings.media_roots,
                                   media=lambda: self.media.status,
                                   disk_limit_percent=settings.disk_limit_percent)
        self.metrics = WorkerMetrics(self.readiness)
        self.client = MasterClient(settings.master_url, shutdown=shutdown, ca_file=settings.ca_file,
                                   on_switch=lambda _old, new, _why: self.metrics.set_master(
                                       self.client.urls, new))
        self.metrics.set_master(self.client.urls, self.client.url)
        self.client.readiness = self.readiness.verdict  # every heartbeat says whether it claims
        self.watchdog = Watchdog()
        for scheme in ("http://", "https://"):
            self.client.session.mount(scheme, PromisingAdapter(self.watchdog))
        changed = threading.Event()  # a wrapper exited or a transfer ended: the loop looks now
        self.media = MediaPlane(store_url=settings.media_store_url,
                                credentials=_media_credentials(settings.media_credentials_file),
                                work_dir=settings.work_dir, wake=changed, metrics=self.metrics)
        self.jobs = JobTable(settings.state_dir, log_dir=settings.log_dir, log_level=settings.log_level,
                             cancel_grace_s=settings.cancel_grace, media_roots=settings.media_roots,
                             keep_delivered=settings.job_history,
                             keep_delivered_s=settings.job_history_hours * 3600.0,
                             node=lambda: self.client.node_id,
                             place=self.media.place, changed=changed,
                             scratch=lambda job: self.media.scratch(job).path,
                             standby=settings.slots)  # one started wrapper per slot
        self.identity = Identity(settings.state_dir)
        self.loop = AgentLoop(client=self.client, jobs=self.jobs, readiness=self.readiness,
                              metrics=self.metrics, shutdown=shutdown, slots=settings.slots,
                              media_roots=settings.media_roots, media=self.media)
        self.capabilities = _capabilities()

    def register(self) -> None:
        caps = self.capabilities
        body: dict[str, Any] = {"name": self.settings.node_name, "slots": self.settings.slots,
                                "encoders": list(caps.encoders), "hwaccels": list(caps.hwaccels),
                                "ffmpeg_version": caps.ffmpeg_version[:200], "agent_version": __version__}
        data = None
        if self.client.credential is not None:  # the saved identity: same node, this start's facts
            try:
                data = self.client.facts(body)
            except MasterRejected as exc:
                if not exc.forgotten:
                    raise
                log.warning("the master does not know this node's saved identity (%s): enrolling", exc,
                            extra=fields(node=self.client.node_id))
                self.identity.forget(self.client)
        if data is None:
            data = self.client.register(self.settings.enroll_token, body)
        self.identity.save(self.client)
        self.loop.heartbeat_interval_s = float(data.get("heartbeat_interval_s", 5))
        self.loop.next_heartbeat = 0.0
        log.info("registered as %s (%d slots, %d encoders)", data["node_id"], self.settings.slots,
                 len(caps.encoders), extra=fields(node=data["node_id"]))

    def run(self) -> int:
        self.identity.load(self.client)  # first: what adopt() logs names the node
        self.jobs.adopt()
        probe_stop = threading.Event()
        self.shutdown.register("media probe", probe_stop.set)
        threading.Thread(target=self.media.probe, args=(probe_stop,), daemon=True,
                         name="media-probe").start()
        ready_sent = False
        self.watchdog.start()
        while not self.shutdown.requested:
            self.watchdog.expect()  # each pass, and each HTTP attempt in it, promises anew
            try:
                if not self.identity.registered:
                    self.register()
                if not ready_sent:  # heartbeat at once: READY=1 should not wait for a long-poll
                    self.loop.heartbeat()
                    if self.readiness.master() == "reachable":
                        sd_notify(f"READY=1\nSTATUS=registered as {self.client.node_id}")
                        ready_sent = True
                self.loop.run_once()
            except Forgotten as exc:
                log.warning("the master forgot this node (%s): registering again", exc,
                            extra=fields(node=self.client.node_id))
                self.identity.forget(self.client)
                continue
            except MasterUnavailable as exc:
                self.readiness.record_heartbeat("timeout" if exc.timeout else "unreachable")
                log.warning("cannot register with %s yet: %s", ", ".join(self.client.urls), exc)
                self._pause(self.loop.heartbeat_interval_s)
                continue
            except MasterRejected as exc:
                if not self.identity.registered and _registration_refused(exc):
                    return EX_CONFIG
                log.error("unexpected answer from the master: %s", exc)
                self._pause(self.loop.heartbeat_interval_s)
                continue
        return self.stop()

    def _pause(self, seconds: float) -> None:
        self.watchdog.expect(seconds)
        self.shutdown.wait(seconds)

    def _deliver_before_exit(self, deadline: float) -> None:
        """Jobs that ended during the wait get their results out now, once their outputs are
        delivered (until ``deadline``); the rest stay spooled for the next start."""
        if self.client.credential is None:
            return
        self.jobs.poll()
        try:
            self.loop.deliver_results()  # starts the deliveries of jobs that just ended
            while self.media.delivering() and time.monotonic() < deadline:
                self.watchdog.expect()
                self.jobs.changed.wait(0.5)
                self.jobs.changed.clear()
                self.loop.deliver_results()
        except (Forgotten, MasterRejected, MasterUnavailable) as exc:
            log.warning("results left in the spool for the next start: %s", exc)

    def _say_maintenance(self) -> None:
        """Stopped after a drain: planned maintenance. The master then keeps this node out of
        offline, so the jobs still running here (they outlive the agent) are never made lost.
        Sent after the last heartbeat, which would make the node online again."""
        if self.client.credential is None or not self.loop.draining:
            return
        try:
            self.client.maintenance()
        except (MasterRejected, MasterUnavailable) as exc:
            log.warning("could not tell the master this is maintenance (%s): it will show the "
                        "node offline and its running jobs lost", exc,
                        extra=fields(node=self.client.node_id))
            return
        log.info("stopped after a drain: the master shows this node in maintenance; %d running "
                 "job(s) are kept, and re-adopted at the next start", len(self.jobs.working()),
                 extra=fields(node=self.client.node_id))

    def stop(self) -> int:
        sd_notify("STOPPING=1")
        started = time.monotonic()
        log.info("shutdown requested (%s): no new jobs; waiting up to %.0fs for %d running job(s)",
                 self.shutdown.reason, self.settings.shutdown_timeout, len(self.jobs.working()))
        pause = threading.Event()  # the shutdown event is set now; wait on one that is not
        while self.jobs.working() and time.monotonic() - started < self.settings.shutdown_timeout:
            self.watchdog.expect()
            if self.client.credential is not None:
                try:
                    self.loop.run_once(claiming=False, wait=pause.wait)
                except (Forgotten, MasterRejected, MasterUnavailable) as exc:
                    log.warning("during shutdown: %s", exc)
                    pause.wait(0.5)
            else:
                self.jobs.poll()
                pause.wait(0.5)
        self._deliver_before_exit(started + self.settings.shutdown_timeout)
        self._say_maintenance()
        still = len(self.jobs.working())
        log.info("shutdown reason=%s waited_s=%.1f still_running=%d%s", self.shutdown.reason,
                 time.monotonic() - started, still,
                 " (they keep running; the next agent start reports them)" if still else "")
        self.shutdown.run_handlers()
        return 0


def main(settings: AgentSettings) -> int:
    cgroup = enter_agent_leaf()  # before any thread starts
    logs.setup("worker", "agent.log", log_dir=settings.log_dir, level=settings.log_level)
    shutdown = Shutdown()
    shutdown.install()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # log files reopen by themselves
    shutdown.register("logging", logging.shutdown)  # registered first: runs last
    log.info("agent %s starting: master=%s slots=%d; probing ffmpeg's encoders", __version__,
             ",".join(settings.master_url), settings.slots)
    agent = Agent(settings, shutdown)
    server, thread = start_server(settings.agent_bind, AgentApp(agent.readiness, agent.metrics,
                                                               settings.state_dir),
                                  settings.agent_web_config)

    def stop_server() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    shutdown.register("metrics server", stop_server)
    log.info("serving /health /ready /metrics on %s:%d; cgroup=%s", *server.server_address[:2],
             cgroup or "-")
    return agent.run()
