"""Two masters on one PostgreSQL, three agents that know both: kill either, or the database.

Real processes only: a PostgreSQL cluster of its own (so the test may stop and start it),
two masters under gunicorn, three agents with ``FFRTMP_MASTER_URL=a,b`` running real FFmpeg
through the wrapper, and 200 jobs: short encodes and one-frame ones (the cheapest real job
the spec allows). The tests run in order on one farm:

- kill -9 of the master the agents use while jobs stream in: every acknowledged job
  succeeds, none runs twice, and the agents move to the other master within the retry budget;
- the killed one comes back and the other is killed: the same;
- PostgreSQL stops for 20 s: submits answer 503 with a named code, ``/ready`` is 503 on
  both masters, running encodes carry on and their results are spooled, then delivered.

"Runs twice" is counted from the agents: ``worker_jobs_launched`` summed over them, and the
wrapper's one summary line per workload (``JOB <id> | …``) in each agent's wrapper log.
"One attempt each" holds exactly, the kills included: a claim the killed master committed but
never answered is sent again, with its claim id, to the other master, which answers it with
the same jobs (new tokens) instead of new ones, so no assignment is left for its lease to
hand back (the lease, 5 s here, would show as a second attempt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ffrtmp.agent.client import RetryPolicy
from tests import pg_cluster
from tests.conftest import (
    AgentProcess,
    MasterProcess,
    kill_workloads,
    master_env,
    postgres_schema_url,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import free_port, wait_until
from tests.pg_cluster import Cluster
from tests.processes import await_ready

pytestmark = pytest.mark.slow

FINAL = ("succeeded", "failed", "canceled", "lost")
LEASE_S = 5  # short: an assignment left behind would show as a second attempt in this run
REQUEST_TIMEOUT_S = 10.0  # the agent's default per-request timeout (MasterClient)
# the agent's whole retry cycle for one message: every backoff plus one request's timeout
RETRY_BUDGET_S = sum(RetryPolicy().backoff(i) for i in range(RetryPolicy().total)) + REQUEST_TIMEOUT_S
OUTAGE_S = 20.0


# --- a PostgreSQL cluster this test may stop and start ---


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if pg_cluster.bindir() is None:
        pytest.fail("PostgreSQL server binaries are required (Debian: postgresql)")
    with pg_cluster.running(free_port()) as made:
        yield made


# --- the farm ---


@dataclasses.dataclass
class Farm:
    """Masters ``a`` and ``b`` (replaced in place when restarted), three agents, the jobs sent."""

    base: Path
    cluster: Cluster
    masters: list[MasterProcess]
    agents: list[AgentProcess] = dataclasses.field(default_factory=list)
    jobs: dict[str, str] = dataclasses.field(default_factory=dict)  # acknowledged: id -> kind
    sent: int = 0

    @property
    def media(self) -> Path:
        return Path(self.masters[0].env["FFRTMP_MEDIA_ROOTS"])

    def up(self) -> list[MasterProcess]:
        return [m for m in self.masters if m.proc.poll() is None]

    def kill(self, index: int) -> float:
        """kill -9 of the master's whole process group (arbiter and workers); when it happened."""
        stop_process(self.masters[index].proc, signal.SIGKILL)
        return time.monotonic()

    def restart(self, index: int) -> None:
        old = self.masters[index]
        self.masters[index] = start_master(old.log_path.parent, old.env, name=old.log_path.stem)

    def spec(self, kind: str) -> dict[str, Any]:
        self.sent += 1
        source, size = {
            "encode": ("testsrc://?duration=0.5&size=160x120&rate=10", "160x120"),
            "frame": ("testsrc://?duration=0.04&size=16x16&rate=25", "16x16"),  # one frame
            "long": ("testsrc://?duration=8&size=160x120&rate=10&realtime=1", "160x120"),
        }[kind]
        return {"input": source, "intent": f"ha-{kind}",
                "outputs": [{"url": f"file://{self.media}/ha/{kind}-{self.sent}.mp4",
                             "preset": "h264-480p", "size": size, "encoder_preset": "ultrafast"}]}

    def submit(self, kind: str) -> str:
        """To the first master that answers; a refused connection never reached the store."""
        failures = []
        for master in self.up():
            try:
                reply = post(master, "/api/v1/jobs", self.spec(kind))
            except requests.ConnectionError as exc:
                failures.append(exc)
                continue
            assert reply.status_code == 201, (reply.status_code, reply.text)
            job_id: str = reply.json()["job"]["id"]
            self.jobs[job_id] = kind
            return job_id
        raise AssertionError(f"no master took the job: {failures}")


def post(master: MasterProcess, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(master.url + path, json=body, timeout=10,
                         headers=master.session().headers)


def get(master: MasterProcess, path: str) -> Any:
    reply = requests.get(master.url + path, timeout=10, headers=master.session().headers)
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def start_farm(base: Path, cluster: Cluster) -> Farm:
    database = postgres_schema_url(cluster.url)
    media = base / "media"
    (media / "ha").mkdir(parents=True)
    masters = []
    for name in ("a", "b"):
        directory = base / name
        directory.mkdir()
        env = master_env(directory, FFRTMP_DATABASE=database, FFRTMP_MEDIA_ROOTS=str(media),
                         FFRTMP_LEASE=str(LEASE_S))
        masters.append(start_master(directory, env, name=f"master-{name}"))
    farm = Farm(base, cluster, masters)
    urls = ",".join(m.url for m in masters)
    for index in range(3):  # started together, then awaited: each probes FFmpeg for a while
        name = f"agent-{index}"
        farm.agents.append(start_agent(base, masters[0], name, FFRTMP_MASTER_URL=urls, wait_ready=False,
                                       FFRTMP_LOG_DIR=str(base / name / "log")))
    for agent in farm.agents:
        await_ready(agent, 60, f"agent {agent.env['FFRTMP_NODE_NAME']}")
    return farm


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster) -> Iterator[Farm]:
    base = tmp_path_factory.mktemp("ha")
    made: Farm | None = None
    try:
        made = start_farm(base, cluster)
        yield made
    finally:
        for daemon in [*(made.agents if made else []), *(made.masters if made else [])]:
            stop_process(daemon.proc, signal.SIGKILL)
        kill_workloads(base)
        for out in sorted(base.glob("*.out")) + sorted(base.glob("*/*.out")):
            print(f"--- {out.name} (last 4000 characters) ---\n{out.read_text(errors='replace')[-4000:]}")


# --- what the agents say ---


def samples(agent: AgentProcess, name: str) -> list[tuple[dict[str, str], float]]:
    text = requests.get(agent.url + "/metrics", timeout=5).text
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


def master_in_use(agent: AgentProcess) -> str | None:
    """The URL ``worker_master_info`` marks 1 (the others are 0)."""
    using = [labels["url"] for labels, value in samples(agent, "worker_master_info") if value == 1]
    return using[0] if len(using) == 1 else None


def launched(farm: Farm) -> int:
    return int(sum(value for agent in farm.agents
                   for _, value in samples(agent, "worker_jobs_launched_total")))


def workloads_per_job(farm: Farm) -> dict[str, int]:
    """Job id -> wrapper summary lines in every agent's wrapper log: one per workload run."""
    counts: dict[str, int] = {}
    for agent in farm.agents:
        log = Path(agent.env["FFRTMP_LOG_DIR"]) / "wrapper" / "wrapper.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if (at := line.find("JOB ")) >= 0 and " | attempt=" in line:
                job_id = line[at + 4:].split(" ", 1)[0]
                counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def wait_moved(farm: Farm, to: MasterProcess, since: float) -> float:
    """Every agent reports ``to`` as its master; return how long after ``since`` it took."""
    wait_until(lambda: all(master_in_use(a) == to.url for a in farm.agents), RETRY_BUDGET_S + 5,
               f"every agent to move to {to.url}", interval=0.2)
    took = time.monotonic() - since
    assert took <= RETRY_BUDGET_S, f"the agents took {took:.1f}s to move; the budget is {RETRY_BUDGET_S}s"
    return took


# --- jobs in, and their outcomes ---


class Stream(threading.Thread):
    """Submits ``count`` jobs (every third a short encode, the rest one frame), paced by ``gap_s``."""

    def __init__(self, farm: Farm, count: int, gap_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.farm, self.count, self.gap_s = farm, count, gap_s
        self.ids: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n in range(self.count):
                self.ids.append(self.farm.submit("encode" if n % 3 == 0 else "frame"))
                time.sleep(self.gap_s)  # pacing: the kill lands while jobs still arrive
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    def finish(self) -> list[str]:
        self.join(60)
        assert not self.is_alive(), "the submitter is stuck"
        if self.error is not None:
            raise self.error
        return self.ids


def listed(farm: Farm) -> dict[str, str]:
    """Every job in the store -> its state, as the first master up lists them."""
    return {j["id"]: j["state"] for j in get(farm.up()[0], "/api/v1/jobs?limit=500")["jobs"]}


def wait_final(farm: Farm, ids: list[str], timeout: float) -> dict[str, str]:
    def done() -> dict[str, str] | None:
        states = listed(farm)
        return states if all(states.get(i) in FINAL for i in ids) else None

    return wait_until(done, timeout, f"{len(ids)} jobs to finish", interval=0.3)


def assert_each_ran_once(farm: Farm, ids: list[str]) -> None:
    """Every acknowledged job succeeded with one attempt, and every job in the store ran once."""
    states = wait_final(farm, ids, timeout=120)
    master = farm.up()[0]
    for job_id in ids:
        job = get(master, f"/api/v1/jobs/{job_id}")["job"]
        assert job["state"] == "succeeded", job
        assert len(job["attempts"]) == 1, ("one attempt each", job["attempts"])
        assert job["attempts"][0]["result"]["exit_code"] == 0, job["attempts"][0]
    print(f"{len(ids)} jobs succeeded, one attempt each")
    in_store = sorted(states)
    assert set(farm.jobs) <= set(in_store)
    wait_until(lambda: workloads_per_job(farm) == dict.fromkeys(in_store, 1), 20,
               "one workload per job in the wrapper logs")
    assert launched(farm) == len(in_store), "worker_jobs_launched summed over the agents"


def kill_mid_stream(farm: Farm, victim: int, count: int) -> None:
    """Jobs stream in; kill -9 of master ``victim`` once some are done and more are coming."""
    survivor = farm.masters[1 - victim]
    assert all(master_in_use(a) == farm.masters[victim].url for a in farm.agents)
    before = set(listed(farm))
    stream = Stream(farm, count)
    stream.start()
    wait_until(lambda: sum(s == "succeeded" for j, s in listed(farm).items() if j not in before) >= 10,
               60, "the first jobs of the stream to succeed", interval=0.2)
    assert stream.is_alive(), "the kill must land while jobs still arrive"
    killed_at = farm.kill(victim)
    took = wait_moved(farm, survivor, killed_at)
    print(f"the agents moved to {survivor.url} {took:.1f}s after the kill")
    ids = stream.finish()
    assert len(ids) == count
    assert_each_ran_once(farm, list(farm.jobs))


def test_kill_9_of_the_master_in_use(farm: Farm) -> None:
    kill_mid_stream(farm, victim=0, count=80)


def test_it_comes_back_and_the_other_is_killed(farm: Farm) -> None:
    farm.restart(0)
    kill_mid_stream(farm, victim=1, count=60)


def workloads(farm: Farm, ids: list[str]) -> dict[str, str]:
    """Job id -> "running" (its workload or wrapper is alive), "finished" (result.json written) or "gone",
    from the wrappers' files on every agent."""
    from ffrtmp.wrapper import procinfo

    found = dict.fromkeys(ids, "gone")
    for agent in farm.agents:
        for job_id in ids:
            for job_dir in agent.state_dir.glob(f"jobs/{job_id}.*"):
                if (job_dir / "result.json").exists():
                    found[job_id] = "finished"
                    continue
                with contextlib.suppress(OSError, ValueError):
                    state = json.loads((job_dir / "wrapper.json").read_text())
                    # the wrapper outlives its workload until result.json is written
                    if procinfo.alive(state["pid"], state.get("pid_start_ticks")) or \
                            procinfo.alive(state["wrapper_pid"], state.get("wrapper_start_ticks")):
                        found[job_id] = "running"
    return found


def spooled(farm: Farm) -> int:
    return int(sum(value for agent in farm.agents for _, value in samples(agent, "worker_results_spooled")))


def outage_answers(farm: Farm) -> list[tuple[int, str, int]]:
    """(submit status, its error code, /ready status) from each master while the database is down."""
    answers = []
    for master in farm.masters:
        reply = post(master, "/api/v1/jobs", farm.spec("frame"))
        code = reply.json().get("error", {}).get("code", "") if reply.status_code != 201 else ""
        answers.append((reply.status_code, code, requests.get(master.url + "/ready", timeout=10).status_code))
    return answers


def ride_out_the_outage(farm: Farm, longs: list[str], down_at: float) -> set[tuple[int, str, int]]:
    """Until OUTAGE_S has passed: what the masters answer, and the encodes keep running."""
    seen: set[tuple[int, str, int]] = set()
    while time.monotonic() - down_at < OUTAGE_S:
        seen.update(outage_answers(farm))
        states = workloads(farm, longs)
        assert "gone" not in states.values(), f"an encode stopped before it finished: {states}"
        time.sleep(0.5)
    return seen


def test_postgres_stops_for_20s(farm: Farm) -> None:
    farm.restart(1)
    longs = [farm.submit("long") for _ in range(6)]  # one per slot, 8 s each, paced at 1x
    wait_until(lambda: set(workloads(farm, longs).values()) == {"running"}, 30, "every long encode running")
    rest = [farm.submit("encode" if n % 3 == 0 else "frame") for n in range(54)]
    farm.cluster.stop("fast")
    down_at = time.monotonic()
    seen = ride_out_the_outage(farm, longs, down_at)
    assert seen == {(503, "store_unavailable", 503)}, f"(submit, code, /ready) during the outage: {seen}"
    assert set(workloads(farm, longs).values()) == {"finished"}, "the 8 s encodes end within the outage"
    wait_until(lambda: spooled(farm) == len(longs), 15, "every long encode's result to be spooled")
    farm.cluster.start()
    assert_each_ran_once(farm, [*longs, *rest])
    assert len(farm.jobs) == 200
    for master in farm.masters:
        assert requests.get(master.url + "/ready", timeout=10).status_code == 200
