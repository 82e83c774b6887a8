"""Split benchmark: one long file split across two single-core nodes against the same job unsplit.

Two nodes are simulated on one machine by pinning each of two agents to a core of its own
(``taskset -c 0`` and ``-c 1``); their wrappers and FFmpeg inherit the affinity, which the run
checks by reading ``Cpus_allowed_list`` of every wrapper and FFmpeg it sees. Each agent has one
slot, as a one-core node would. The master and this script are not pinned: they are light, and
a real farm runs them elsewhere.

The source (testsrc2 and a tone, 720p at 25 fps, a keyframe every 2 s) is written once to a
file and kept in the system's temporary directory (``ffrtmp-split-bench/``); each run copies it
into the farm's media root, the "shared" mount both agents see. The job is a two-rung ladder
(h264-720p and h264-360p, mp4). Rounds are interleaved (split, unsplit, split, …) so both share
the machine's noise; each round's figure is split wall / unsplit wall, submit to the parent's
``finished_at``, plan, audio and stitch included (goal ≤ 0.60).

The fixed costs come from the children's attempts in the master's API (``GET /api/v1/jobs?
parent=``, then each child's attempts): the plan, the audio and the stitch (claim to end),
and per segment the start-up (claim to FFmpeg running), the finish (FFmpeg's exit to the
master's record: delivery and report) and the gap before the node's next claim; the seam
alignment (decoding from the keyframe before a cut up to the cut) is measured with FFmpeg on a
pinned core. With them the split's wall on N nodes is, on paper (docs/performance.md),
``T_split(N) ≈ plan + max(audio, ceil(S/N) · (t_seg + c_seg)) + stitch``.

    python bench/split_bench.py            # 120 s source, 10 s segments, 3 rounds: about 10 minutes
    python bench/split_bench.py --quick    # 30 s source, 1 round: about 2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

import psutil
from tests.processes import AgentProcess, agent_env, await_ready, clean_env, kill_workloads

from bench import harness
from bench.farm import parse_ts
from bench.master_client import Master

CACHE = Path(tempfile.gettempdir()) / "ffrtmp-split-bench"
GOALS: harness.Goals = {"split_wall_ratio": ("<=", 0.60)}
LADDER = ({"name": "a-720p.mp4", "preset": "h264-720p"}, {"name": "a-360p.mp4", "preset": "h264-360p"})
AT_REST = {"succeeded", "failed", "canceled", "lost"}
POLL_S = 0.25


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    duration_s: int  # the source's length
    size: str  # the source's frame size
    segment_s: float  # the split's target segment length
    rounds: int  # interleaved split/unsplit pairs
    deadline_s: float
    cores: tuple[int, ...] = (0, 1)  # one agent ("node") pinned to each
    ladder: tuple[dict[str, str], ...] = LADDER  # the outputs: a file name and its encoding


FULL = Profile("full", duration_s=120, size="1280x720", segment_s=10, rounds=3, deadline_s=3600.0)
QUICK = Profile("quick", duration_s=30, size="1280x720", segment_s=10, rounds=1, deadline_s=900.0)


# --- the source ---


def ffmpeg(*args: str, core: int | None = None, timeout: float = 900) -> float:
    """Run FFmpeg (pinned to ``core`` if given); its wall seconds, BenchError if it fails."""
    pin = ["taskset", "-c", str(core)] if core is not None else []
    started = time.perf_counter()
    proc = subprocess.run([*pin, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise harness.BenchError(f"ffmpeg {' '.join(args[:6])} … failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def make_source(profile: Profile, cache: Path) -> Path:
    """testsrc2 + a 440 Hz tone, H.264/AAC, a keyframe every 2 s: made once, then reused."""
    source = cache / f"source-{profile.duration_s}s-{profile.size}.mp4"
    if source.exists():
        return source
    cache.mkdir(parents=True, exist_ok=True)
    d = profile.duration_s
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={profile.size}:rate=25:duration={d}",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={d}",
           "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart",
           f"{source}.tmp.mp4")
    Path(f"{source}.tmp.mp4").rename(source)
    return source


# --- the farm: a master and one pinned one-slot agent per core, on one media root ---


def spawn_pinned(core: int, env: dict[str, str], log_path: Path) -> AgentProcess:
    """``python -m ffrtmp agent`` as ``tests/processes.py`` spawns it, but under ``taskset -c CORE``.

    taskset execs the agent, so the process is the agent itself, and every process it starts
    (wrappers, FFmpeg, ffprobe) inherits its affinity.
    """
    with log_path.open("ab") as out:
        proc = subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-m", "ffrtmp", "agent"],
                                env={**clean_env(), **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return AgentProcess(env, proc, log_path)


class PinnedFarm:
    """A real master and one agent per core, each agent started under ``taskset -c CORE``."""

    def __init__(self, base: Path, cores: tuple[int, ...]) -> None:
        self.master = Master(base, "split")
        self.dir, self.media = self.master.dir, self.master.media
        self.cores = cores
        self.agents: dict[str, AgentProcess] = {}
        self.session = self.master.session()

    def start(self, timeout_s: float = 60.0) -> None:
        self.master.start(timeout_s)
        assert self.master.process is not None
        for core in self.cores:
            name = f"node{core}"
            env = agent_env(self.dir, self.master.process, name, FFRTMP_SLOTS="1", FFRTMP_NODE_NAME=name)
            harness.STATE_DIRS.add(Path(env["FFRTMP_STATE_DIR"]))
            agent = spawn_pinned(core, env, self.dir / f"{name}.out")
            harness.LIVE.add(agent.proc)
            try:
                await_ready(agent, timeout_s, f"agent {name}")
            except AssertionError as exc:
                raise harness.BenchError(str(exc)[-3000:]) from None
            self.agents[name] = agent

    def stop(self) -> None:
        for agent in self.agents.values():
            harness.stop(agent.proc)
            kill_workloads(agent.state_dir)
        self.master.stop()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        reply = self.session.get(self.master.url + path, params=params, timeout=harness.REQUEST_TIMEOUT_S)
        if reply.status_code != 200:
            raise harness.BenchError(f"GET {path}: {reply.status_code} {reply.text[:300]}")
        return dict(reply.json())

    def submit(self, spec: dict[str, Any]) -> tuple[str, float]:
        submitted = time.time()
        reply = self.session.post(self.master.url + "/api/v1/jobs", json=spec,
                                  timeout=harness.REQUEST_TIMEOUT_S)
        if reply.status_code != 201:
            raise harness.BenchError(f"submit: {reply.status_code} {reply.text[:300]}")
        return str(reply.json()["job"]["id"]), submitted

    def jobs_cpu(self) -> dict[str, float]:
        """CPU seconds of every workload each agent has reaped so far (its children's times).

        A wrapper reaps its FFmpeg and the agent reaps the wrapper (and its own ffprobe), so
        the difference over a job is the exact CPU its workloads used on that node.
        """
        out = {}
        for name, agent in self.agents.items():
            times = psutil.Process(agent.proc.pid).cpu_times()
            out[name] = times.children_user + times.children_system
        return out

    def node_names(self) -> dict[str, str]:
        return {n["id"]: n["name"] for n in self.get("/api/v1/nodes")["nodes"]}


class Affinity:
    """Samples, while jobs run, the CPUs every wrapper, FFmpeg and ffprobe of each agent may use.

    A process belongs to the agent whose state directory is on its command line (the wrapper's
    job directory, FFmpeg's ``-progress`` file).
    """

    def __init__(self, farm: PinnedFarm) -> None:
        self.dirs = {name: str(agent.state_dir) for name, agent in farm.agents.items()}
        self.agent_pids = {name: agent.proc.pid for name, agent in farm.agents.items()}
        self.seen: dict[str, dict[str, set[str]]] = {name: {} for name in self.dirs}
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="affinity")

    def __enter__(self) -> Affinity:
        for name, pid in self.agent_pids.items():
            self.seen[name].setdefault("agent", set()).add(allowed_cpus(pid))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for proc in psutil.process_iter(["pid", "name", "cmdline"]):
                line = " ".join(proc.info["cmdline"] or ())
                kind = proc.info["name"] if proc.info["name"] in ("ffmpeg", "ffprobe") else (
                    "wrapper" if " wrapper " in f" {line} " else None)
                for name, state in self.dirs.items():
                    if kind and state in line and proc.info["pid"] not in self.agent_pids.values():
                        with contextlib.suppress(OSError):
                            self.seen[name].setdefault(kind, set()).add(allowed_cpus(proc.info["pid"]))
                            self.pids.add(proc.info["pid"])

    def report(self) -> dict[str, dict[str, list[str]]]:
        return {name: {kind: sorted(cpus) for kind, cpus in kinds.items()}
                for name, kinds in self.seen.items()}


def allowed_cpus(pid: int) -> str:
    """``Cpus_allowed_list`` from /proc/<pid>/status: the CPUs the process may run on."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise OSError(f"no Cpus_allowed_list for {pid}")


# --- one round ---


def job_spec(source: str, out_dir: str, profile: Profile, split: bool) -> dict[str, Any]:
    outputs = [{"url": f"{out_dir}/{rung['name']}", **{k: v for k, v in rung.items() if k != "name"}}
               for rung in profile.ladder]
    spec: dict[str, Any] = {"input": source, "intent": "split-bench", "outputs": outputs}
    if split:
        spec["split"] = {"segment_s": profile.segment_s}
    return spec


def wait_at_rest(farm: PinnedFarm, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = farm.get(f"/api/v1/jobs/{job_id}")["job"]
        if job["state"] in AT_REST:
            return dict(job)
        for name, agent in farm.agents.items():
            if agent.proc.poll() is not None:
                raise harness.BenchError(f"agent {name} exited:\n{agent.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise harness.BenchError(f"job {job_id} still {job['state']} after {timeout_s:.0f} s")
        time.sleep(POLL_S)


def wait_reaped(farm: PinnedFarm) -> dict[str, float]:
    """The agents' children CPU once every wrapper they started is reaped (its times counted)."""
    def unreaped() -> int:
        count = 0
        for agent in farm.agents.values():
            for child in psutil.Process(agent.proc.pid).children():
                with contextlib.suppress(psutil.Error):
                    count += child.status() == psutil.STATUS_ZOMBIE or "wrapper" in child.cmdline()
        return count

    deadline = time.monotonic() + 10
    while unreaped() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return farm.jobs_cpu()


def children(farm: PinnedFarm, parent_id: str) -> list[dict[str, Any]]:
    """The parent's children (``?parent=``, oldest first), each with its attempts."""
    listed = farm.get("/api/v1/jobs", parent=parent_id, limit=500)["jobs"]
    return [farm.get(f"/api/v1/jobs/{child['id']}")["job"] for child in listed]


def run_round(farm: PinnedFarm, profile: Profile, source: str, tag: str, split: bool) -> dict[str, Any]:
    """Submit one job, wait for it to succeed; its wall from submit to the master's finished_at."""
    out_dir = farm.media / "out" / tag
    spec = job_spec(source, f"file://{out_dir}", profile, split)
    cpu0 = farm.jobs_cpu()
    job_id, submitted = farm.submit(spec)
    job = wait_at_rest(farm, job_id, timeout_s=max(600.0, profile.duration_s * 20))
    cpu = {name: round(s - cpu0[name], 3) for name, s in wait_reaped(farm).items()}
    if job["state"] != "succeeded":
        raise harness.BenchError(f"{tag}: job {job_id} {job['state']}: {job.get('reason') or job}")
    finished = parse_ts(job["finished_at"])
    assert finished is not None
    left = sorted(p.name for p in out_dir.glob(".ffrtmp-split-*"))
    counts = {rung["name"]: frames(out_dir / rung["name"]) for rung in profile.ladder}
    round_: dict[str, Any] = {"job": job_id, "wall_s": round(finished - submitted, 3), "left_in_media": left,
                              "outputs": counts, "cpu_s": cpu}
    if split:
        round_["children"] = [child_timing(c) for c in children(farm, job_id)]
        round_["phases"] = phases(round_["children"], submitted, finished)
    else:
        attempt = job["attempts"][-1]
        round_["runtime_s"] = float((attempt["result"] or {}).get("runtime_s") or 0.0)
        round_["node_id"] = attempt["node_id"]
    shutil.rmtree(out_dir, ignore_errors=True)
    return round_


def frames(path: Path) -> int:
    """The video frames in an output (ffprobe counting packets), 0 if it is missing."""
    if not path.exists():
        return 0
    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                           "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    return int(proc.stdout.strip() or 0)


def child_timing(child: dict[str, Any]) -> dict[str, Any]:
    """One child's clocks (epoch seconds): the master's claim/start/end and FFmpeg's own run."""
    attempt = child["attempts"][-1] if child.get("attempts") else {}
    result = attempt.get("result") or {}
    step = child["spec"].get("step") or {}
    timing = {"id": child["id"], "step": child.get("step") or step.get("kind"), "index": step.get("index"),
              "state": child["state"], "attempts": len(child.get("attempts") or ()),
              "node_id": attempt.get("node_id"), "assigned": parse_ts(attempt.get("assigned_at")),
              "started": parse_ts(attempt.get("started_at")), "ended": parse_ts(attempt.get("ended_at")),
              "ff_start": parse_ts(result.get("started_at")), "ff_end": parse_ts(result.get("ended_at")),
              "runtime_s": result.get("runtime_s"), "duration_s": step.get("duration_s")}
    if isinstance(result.get("plan"), dict):
        timing["cuts"] = [s["start_s"] for s in result["plan"].get("segments", ())]
    return timing


def of_step(kids: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    return [k for k in kids if k["step"] == step]


def span(kid: dict[str, Any]) -> float:
    """Claim to the master's record of the end: what the child cost the critical path."""
    return round(kid["ended"] - kid["assigned"], 3) if kid["ended"] and kid["assigned"] else 0.0


def phases(kids: list[dict[str, Any]], submitted: float, finished: float) -> dict[str, float]:
    """The wall cut where it changes hands: submit → plan ended → last part ended → finished."""
    (plan,) = of_step(kids, "plan")
    parts_end = max(k["ended"] or 0.0 for k in kids if k["step"] in ("segment", "audio"))
    return {"plan_s": round(plan["ended"] - submitted, 3), "encode_s": round(parts_end - plan["ended"], 3),
            "stitch_s": round(finished - parts_end, 3)}


def node_gaps(kids: list[dict[str, Any]]) -> list[float]:
    """On each node, the idle time between one child's end and its next claim."""
    gaps: list[float] = []
    for node in {k["node_id"] for k in kids}:
        mine = sorted((k for k in kids if k["node_id"] == node and k["assigned"] and k["ended"]),
                      key=lambda k: k["assigned"])
        gaps += [b["assigned"] - a["ended"] for a, b in itertools.pairwise(mine)]
    return gaps


def fixed_costs(split_rounds: list[dict[str, Any]], unsplit_runtime_s: float) -> dict[str, Any]:
    """Per-segment and per-job fixed costs over every split round (medians)."""
    kids = [k for r in split_rounds for k in r["children"]]
    segs = [k for k in of_step(kids, "segment") if k["ff_start"] and k["ff_end"]]
    if not segs:
        raise harness.BenchError("no segment child reported FFmpeg's clocks")
    audio = of_step(kids, "audio")
    per_round = [(sum(k["runtime_s"] or 0.0 for k in of_step(r["children"], "segment"))
                  + sum(k["runtime_s"] or 0.0 for k in of_step(r["children"], "audio"))
                  - unsplit_runtime_s) / max(1, len(of_step(r["children"], "segment"))) for r in split_rounds]
    out = {
        "segments": len(segs) // len(split_rounds),
        "t_seg_s": round(harness.median([float(k["runtime_s"]) for k in segs]), 3),
        "startup_s": round(harness.median([k["ff_start"] - k["assigned"] for k in segs]), 3),
        "finish_s": round(harness.median([k["ended"] - k["ff_end"] for k in segs]), 3),
        "gap_s": round(harness.median(node_gaps(kids)), 3),
        "extra_work_per_segment_s": round(harness.median(per_round), 3),
        "plan_s": round(harness.median([span(k) for k in of_step(kids, "plan")]), 3),
        "audio_s": round(harness.median([span(k) for k in audio]), 3) if audio else 0.0,
        "stitch_s": round(harness.median([span(k) for k in of_step(kids, "stitch")]), 3),
    }
    out["c_seg_s"] = round(out["startup_s"] + out["finish_s"] + out["gap_s"], 3)
    return out


def seam_alignment(source: Path, cuts: list[str], core: int, repeats: int = 3) -> dict[str, float]:
    """Decoding from the keyframe at or before each cut up to the cut's first frame, on one core.

    FFmpeg seeks to the keyframe before ``-ss`` and decodes up to the cut: the time to the first
    frame at a cut, less the same at 0 s, is what aligning a segment to its seam costs.
    """
    def first_frame(at: str) -> float:
        return harness.median([ffmpeg("-ss", at, "-i", str(source), "-map", "0:v:0", "-frames:v", "1",
                                      "-f", "null", "-", core=core) for _ in range(repeats)])

    base = first_frame("0")
    costs = [first_frame(cut) - base for cut in cuts if float(cut) > 0]
    return {"first_frame_at_0_s": round(base, 3),
            "median_s": round(harness.median(costs), 3), "max_s": round(max(costs, default=0.0), 3)}


def model(fixed: dict[str, Any], nodes: int) -> float:
    """T_split(N) ≈ plan + max(audio, ceil(S/N) · (t_seg + c_seg)) + stitch."""
    encode = math.ceil(fixed["segments"] / nodes) * (fixed["t_seg_s"] + fixed["c_seg_s"])
    return round(fixed["plan_s"] + max(fixed["audio_s"], encode) + fixed["stitch_s"], 2)


# --- the run ---


@contextlib.contextmanager
def pinned_farm(base: Path, cores: tuple[int, ...]) -> Iterator[PinnedFarm]:
    farm = PinnedFarm(base, cores)
    try:
        farm.start()
        yield farm
    finally:
        farm.stop()


def measure_rounds(farm: PinnedFarm, profile: Profile, source: str, frame: harness.Run,
                   log: harness.Log) -> dict[str, Any]:
    """Split and unsplit, interleaved; every process seen checked for its pinning."""
    rounds: list[dict[str, Any]] = []
    with Affinity(farm) as affinity:
        for n in range(profile.rounds):
            frame.check_deadline()
            split = run_round(farm, profile, source, f"split-{n}", split=True)
            log(f"round {n}: split {split['wall_s']:.1f} s ({len(split['children'])} children)")
            unsplit = run_round(farm, profile, source, f"unsplit-{n}", split=False)
            ratio = round(split["wall_s"] / unsplit["wall_s"], 4)
            log(f"round {n}: unsplit {unsplit['wall_s']:.1f} s; split/unsplit {ratio}")
            rounds.append({"split": split, "unsplit": unsplit, "ratio": ratio})
    return {"rounds": rounds, "affinity": affinity.report(), "processes_checked": len(affinity.pids)}


def summarize(measured: dict[str, Any], source: Path, profile: Profile,
              names: dict[str, str]) -> dict[str, Any]:
    rounds = measured["rounds"]
    splits = [r["split"] for r in rounds]
    unsplit_runtime = harness.median([r["unsplit"]["runtime_s"] for r in rounds])
    fixed = fixed_costs(splits, unsplit_runtime)
    cuts = next((k["cuts"] for k in splits[0]["children"] if "cuts" in k), [])
    fixed["seam_alignment"] = seam_alignment(source, cuts, profile.cores[0])
    ratios = [r["ratio"] for r in rounds]
    seg_nodes = sorted({names.get(k["node_id"], k["node_id"]) for s in splits
                        for k in of_step(s["children"], "segment")})
    return {"ratios": ratios, "ratio_median": round(harness.median(ratios), 4), "cpu": cpu_figures(rounds),
            "split_wall_median_s": round(harness.median([s["wall_s"] for s in splits]), 3),
            "unsplit_wall_median_s": round(harness.median([r["unsplit"]["wall_s"] for r in rounds]), 3),
            "unsplit_runtime_median_s": round(unsplit_runtime, 3), "segment_nodes": seg_nodes,
            "fixed": fixed, "model": {str(n): model(fixed, n) for n in (1, 2, 4, 8, 16)}}


def cpu_figures(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """The work in CPU seconds, which other load on the machine does not change (medians).

    ``work_ratio``: all the split's workloads over the unsplit encode (what splitting adds);
    ``cpu_bound_ratio``: the busier node's CPU over the unsplit encode's, the wall ratio two
    otherwise idle cores would give but for the hand-overs between parts.
    """
    split = [sum(r["split"]["cpu_s"].values()) for r in rounds]
    busiest = [max(r["split"]["cpu_s"].values()) for r in rounds]
    unsplit = [sum(r["unsplit"]["cpu_s"].values()) for r in rounds]
    def ratio(part: list[float]) -> float:
        return round(harness.median([a / b for a, b in zip(part, unsplit, strict=True) if b]), 4)

    return {"split_s": round(harness.median(split), 2), "unsplit_s": round(harness.median(unsplit), 2),
            "split_busiest_node_s": round(harness.median(busiest), 2),
            "work_ratio": ratio(split), "cpu_bound_ratio": ratio(busiest)}


def run(profile: Profile, *, log: harness.Log = print, workdir: Path | None = None,
        cache: Path = CACHE) -> dict[str, Any]:
    """The whole benchmark; every process started is stopped before this returns."""
    frame = harness.Run(profile)
    source = make_source(profile, cache)
    result: dict[str, Any] = {**frame.header("split"),
                              "machine": harness.machine(ffmpeg=ffmpeg_version(),
                                                         pinned_cores=list(profile.cores)),
                              "source": probe_source(source)}
    with harness.scratch(workdir, "ffrtmp-split-bench-") as base, pinned_farm(base, profile.cores) as farm:
        shared = farm.media / "in" / source.name
        shared.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, shared)
        log(f"source {source.name}: {result['source']}; agents on cores {list(profile.cores)}")
        result.update(measure_rounds(farm, profile, f"file://{shared}", frame, log))
        result["summary"] = summarize(result, source, profile, farm.node_names())
    return frame.finish(result, goals)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ratios = result["summary"]["ratios"]
    verdict = harness.verdict(GOALS, {"split_wall_ratio": result["summary"]["ratio_median"]})
    noise = harness.standard_error(ratios, of_median=True)
    target = GOALS["split_wall_ratio"][1]
    verdict["split_wall_ratio"].update(noise=noise, conclusive=noise is None or
                                       abs(verdict["split_wall_ratio"]["measured"] - target) > 2 * noise)
    return verdict


def ffmpeg_version() -> str:
    line = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True,
                          timeout=30, check=False).stdout.split("\n", 1)[0]
    return " ".join(line.split()[:3])


def probe_source(source: Path) -> dict[str, Any]:
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration,size", "-of",
                           "default=nw=1", str(source)], capture_output=True, text=True, timeout=60,
                          check=False)
    fields = dict(line.split("=", 1) for line in proc.stdout.split())
    return {"file": source.name, "duration_s": round(float(fields.get("duration", 0)), 3),
            "bytes": int(fields.get("size", 0)), "video_frames": frames(source)}


# --- the report ---


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [harness.title(result, m["ffmpeg"]), harness.load_line(m, "wall times swing with it"),
             f"source: {result['source']}; ladder {result['profile']['ladder']}; split "
             f"{result['profile']['segment_s']:g} s; agents pinned to cores {m['pinned_cores']}", "",
             "round | split wall s (plan / encode / stitch) | unsplit wall s | split/unsplit"]
    for n, r in enumerate(result["rounds"]):
        p = r["split"]["phases"]
        lines.append(f"{n:5} | {r['split']['wall_s']:8.2f} ({p['plan_s']:.2f} / {p['encode_s']:.2f} / "
                     f"{p['stitch_s']:.2f}) | {r['unsplit']['wall_s']:8.2f} | {r['ratio']:.3f}")
    lines += ["", *render_fixed(result["summary"]),
              f"affinity seen ({result['processes_checked']} processes): {result['affinity']}", ""]
    return "\n".join(lines + harness.goal_lines(result["goals"]))


def render_fixed(s: dict[str, Any]) -> list[str]:
    f, seam = s["fixed"], s["fixed"]["seam_alignment"]
    c = s["cpu"]
    return [f"segments S = {f['segments']} on nodes {', '.join(s['segment_nodes'])}",
            f"workload CPU s: split {c['split_s']:.2f} (busier node {c['split_busiest_node_s']:.2f}), "
            f"unsplit {c['unsplit_s']:.2f}; work ratio {c['work_ratio']:.3f}, "
            f"CPU-bound ratio {c['cpu_bound_ratio']:.3f}",
            f"t_seg (FFmpeg per segment, median) {f['t_seg_s']:.3f} s; "
            f"unsplit FFmpeg {s['unsplit_runtime_median_s']:.2f} s",
            f"c_seg = start-up {f['startup_s']:.3f} + finish {f['finish_s']:.3f} + gap {f['gap_s']:.3f}"
            f" = {f['c_seg_s']:.3f} s",
            f"seam alignment (decode from the keyframe to the cut): median {seam['median_s']:.3f} s, "
            f"max {seam['max_s']:.3f} s",
            f"extra FFmpeg work per segment ((segments + audio - unsplit) / S): "
            f"{f['extra_work_per_segment_s']:.3f} s",
            f"plan {f['plan_s']:.3f} s, audio {f['audio_s']:.3f} s, stitch {f['stitch_s']:.3f} s"
            " (claim to end)",
            "model T_split(N) = plan + max(audio, ceil(S/N)(t_seg + c_seg)) + stitch: "
            + ", ".join(f"N={n}: {t:.1f} s" for n, t in s["model"].items())]


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    cli.add_argument("--quick", action="store_true", help="a 30 s source, 1 round")
    cli.add_argument("--rounds", type=int, help="interleaved split/unsplit pairs")
    cli.add_argument("--out", type=Path, default=harness.RESULTS_DIR, help="directory for the JSON result")
    args = cli.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.rounds:
        profile = dataclasses.replace(profile, rounds=args.rounds)
    return harness.execute(lambda log: run(profile, log=log), render, args.out)


if __name__ == "__main__":
    sys.exit(main())
