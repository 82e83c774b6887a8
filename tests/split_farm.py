"""A farm for split jobs: a gunicorn master, two real agents (two nodes) sharing one media root,
both configured with a real nginx WebDAV store (``tests/webdav.py``).

It is the media-plane ``Farm`` with a second agent: the CLI, the stop and the store helpers are
that module's. What is added is what a split job needs to be watched: its children, the plan
the plan step reported, who ran what, how often a workload was launched, and whether anything
of the intermediates is left in the store or on the media root.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import AgentProcess, agent_env, start_agent, start_master, stop_process
from tests.integration.test_agent_jobs import FINAL
from tests.integration.test_media_plane import Farm, stop_farm, temporaries
from tests.processes import await_ready, wait_until
from tests.webdav import WebDavStore

WORKSPACE_MARK = ".ffrtmp-split-"  # the intermediates' directory name starts with it
AGENTS = ("agent-a", "agent-b")


@dataclass
class SplitFarm(Farm):
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    @property
    def media_root(self) -> Path:
        return Path(self.master.env["FFRTMP_MEDIA_ROOTS"])

    def get(self, path: str) -> Any:
        reply = self.master.session().get(self.master.url + path, timeout=10)
        assert reply.status_code == 200, (path, reply.status_code, reply.text)
        return reply.json()

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        """``GET /api/v1/jobs?parent=``: the split job's children, oldest first."""
        return list(self.get(f"/api/v1/jobs?parent={parent_id}&limit=500")["jobs"])

    def parts(self, parent_id: str, step: str) -> list[dict[str, Any]]:
        """The children of one step, in segment order for segments."""
        found = [c for c in self.children(parent_id) if c["step"] == step]
        return sorted(found, key=lambda c: (c["spec"].get("step") or {}).get("index", 0))

    def plan(self, parent_id: str) -> dict[str, Any]:
        """What the plan step reported (``result.plan`` of its last attempt)."""
        [plan_child] = self.parts(parent_id, "plan")
        attempts = self.job(plan_child["id"])["attempts"]
        return dict(attempts[-1]["result"]["plan"])

    def wait_state(self, job_id: str, timeout: float, states: tuple[str, ...] = FINAL) -> dict[str, Any]:
        return wait_until(lambda: (j := self.job(job_id))["state"] in states and j, timeout,
                          f"job {job_id} to reach one of {states}")

    def node_names(self) -> dict[str, str]:
        """Node id -> node name, for telling which agent ran a child."""
        return {n["id"]: n["name"] for n in self.get("/api/v1/nodes")["nodes"]}

    def launches(self, job_id: str) -> int:
        """Wrappers started for the job, by every agent, across restarts (the logs append)."""
        return sum(sum(1 for line in agent.output().splitlines()
                       if "launched wrapper" in line and f"job={job_id}" in line)
                   for agent in self.agents.values())

    def work_dir(self, name: str) -> Path:
        return Path(self.agents[name].env["FFRTMP_WORK_DIR"])

    def kill_agent(self, name: str) -> None:
        """SIGKILL the agent alone: its wrappers and their workloads run on, as after a crash."""
        stop_process(self.agents[name].proc, signal.SIGKILL)

    def start_agent(self, name: str) -> AgentProcess:
        """The same node again: same state dir, same log file."""
        agent = start_agent(self.tmp, self.master, name, env=self.agents[name].env)
        self.agents[name] = agent
        self.started.append(agent)
        return agent

    def restart_master(self) -> None:
        """Stop the master (SIGTERM) and start it again on the same database and ports."""
        stop_process(self.master.proc)
        self.master = start_master(self.tmp, self.master.env)

    def leftovers(self) -> list[str]:
        """Anything of a split workspace, or an upload temporary, in the store or on the media root."""
        found = [str(p) for root in (self.store.root, self.media_root) for p in root.rglob("*")
                 if WORKSPACE_MARK in str(p.relative_to(root))]
        return sorted(found) + temporaries(self.store)


def start_split_farm(tmp: Path, store: WebDavStore, **agent_settings: str) -> SplitFarm:
    master = start_master(tmp)
    agents: dict[str, AgentProcess] = {}
    try:
        for name in AGENTS:  # started together: each probes FFmpeg's encoders for seconds
            env = agent_env(tmp, master, name, FFRTMP_MEDIA_STORE_URL=store.url,
                            FFRTMP_MEDIA_CREDENTIALS_FILE=str(store.netrc), **agent_settings)
            agents[name] = start_agent(tmp, master, name, env=env, wait_ready=False)
        for name, agent in agents.items():
            await_ready(agent, 60, f"agent {name}")
    except BaseException:
        for agent in agents.values():
            stop_process(agent.proc, signal.SIGKILL)
        stop_process(master.proc)
        raise
    first = agents[AGENTS[0]]
    return SplitFarm(tmp, store, master, first, list(agents.values()), agents=agents)


@contextmanager
def split_farm_on(tmp: Path, store: WebDavStore, **agent_settings: str) -> Iterator[SplitFarm]:
    """A started farm (``agent_settings``: FFRTMP_* overrides for both agents), stopped after."""
    farm = start_split_farm(tmp, store, **agent_settings)
    try:
        yield farm
    finally:
        for name, agent in farm.agents.items():
            print(f"--- {name} ---\n{agent.output()}")
        stop_farm(farm)
