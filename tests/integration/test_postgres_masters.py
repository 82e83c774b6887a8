"""Several masters behind one address share one PostgreSQL queue without assigning a job twice."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.conftest import master_env, postgres_schema_url
from tests.integration.test_master_process import register, submit
from tests.processes import masters_on


def test_two_masters_share_one_postgres_queue(tmp_path: Path, postgres_server: str) -> None:
    with masters_on(tmp_path, postgres_schema_url(postgres_server)) as masters:
        a, b = masters
        jobs = {submit(m, m.session()) for m in (a, b) for _ in range(150)}
        nodes = [(*register(m, f"sim-{i:02d}"), m) for i, m in enumerate([a, b] * 15)]
        barrier = threading.Barrier(len(nodes))

        def work(node: tuple) -> list[str]:
            node_id, session, master = node
            done: list[str] = []
            barrier.wait()
            while True:
                reply = session.post(f"{master.url}/api/v1/nodes/{node_id}/claim", json={"slots": 2},
                                     timeout=30)
                reply.raise_for_status()
                if not (assignments := reply.json()["assignments"]):
                    return done
                for item in assignments:
                    token = {"attempt_token": item["attempt_token"]}
                    session.post(f"{master.url}/api/v1/jobs/{item['job_id']}/start", json=token,
                                 timeout=30).raise_for_status()
                    session.post(f"{master.url}/api/v1/jobs/{item['job_id']}/result",
                                 json={**token, "outcome": "succeeded"}, timeout=30).raise_for_status()
                    done.append(item["job_id"])

        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            claimed = [job for part in pool.map(work, nodes) for job in part]
        assert sorted(claimed) == sorted(jobs), "every job exactly once"
        for master in masters:
            listed = master.session().get(master.url + "/api/v1/jobs?state=succeeded&limit=500",
                                          timeout=10).json()["jobs"]
            assert len(listed) == 300
        assert "ffrtmp_jobs_by_state{state=\"succeeded\"} 300.0" in requests.get(
            b.metrics_url + "/metrics", timeout=10).text


def test_an_unreachable_database_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    from tests.helpers import free_port

    env = master_env(tmp_path, FFRTMP_DATABASE=f"postgresql://ffrtmp@127.0.0.1:{free_port()}/none")
    run = subprocess.run([sys.executable, "-m", "ffrtmp", "master"], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert "cannot open the database postgresql://***@127.0.0.1" in run.stdout
