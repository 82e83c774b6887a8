"""Media benchmark: a large input through the farm's media store against the same file on local disk.

Every figure is a ratio against a baseline measured in the same run, interleaved with it:

1. transfer: download the source from a real nginx WebDAV store with the agent's own client
   (``ffrtmp.media``: ranged GET into a ``.part`` file, fsync, length verified, renamed) and
   upload it back (MKCOL, PUT under a temporary name, HEAD, MOVE, HEAD), in MB/s, against
   ``cp`` of the same file on local disk followed by an fsync of the copy;
2. encode wall: the same FFmpeg command run (a) on the local file (the baseline), (b) staged
   (download into the work dir, then encode the local copy: ``input_fetch: stage``) and
   (c) streamed (FFmpeg reads the store's URL itself with its reconnect options:
   ``input_fetch: stream``), for a fast transcode to 320x180 and for a ``-c copy`` remux (the
   case where input I/O is all there is). Wall seconds and the ratio to (a).

The source is a high-bitrate, mezzanine-like H.264 file (a lossless encode of a noisy test
pattern, about 550 Mbit/s at 1080p), made once and kept in the system's temporary directory
(``ffrtmp-media-bench/``) for later runs. nginx runs on loopback, configured like the
``ffrtmp_media`` role's store (WebDAV, Basic authentication, ``autoindex`` in JSON), so the
network is not measured: only the HTTP path, the client and the extra copy. The result is
printed as a table and written to ``bench/results/media-<time>.json``.

    python bench/media_bench.py            # a 1 GiB source, 3 rounds: about 10 minutes on 2 quiet cores
    python bench/media_bench.py --quick    # a source of at least 50 MiB (65 MiB), 1 round: under a minute
    python bench/media_bench.py --only encode --rounds 5
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ and tests/ as packages

from tests.webdav import WebDavStore, start_webdav

from bench import harness
from ffrtmp.agent.argv import HTTP_RECONNECT, RW_TIMEOUT_US
from ffrtmp.media.credentials import load_credentials
from ffrtmp.media.webdav import WebDav

MIB = 1024 * 1024
SCENARIOS = ("transfer", "encode")
CACHE = Path(tempfile.gettempdir()) / "ffrtmp-media-bench"
# the same fast encodes, run on the local file, on the staged copy and on the URL
WORKLOADS: dict[str, list[str]] = {
    "transcode": ["-map", "0:v:0", "-c:v", "libx264", "-preset", "ultrafast", "-s", "320x180", "-an"],
    "remux": ["-map", "0", "-c", "copy"],
}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    source_mib: int  # the input's size, at least
    clip_size: str  # the frame size of the generated source (its bitrate grows with it)
    rounds: int  # interleaved repetitions of every measurement
    deadline_s: float


FULL = Profile("full", source_mib=1024, clip_size="1920x1080", rounds=3, deadline_s=1800.0)
QUICK = Profile("quick", source_mib=50, clip_size="1920x1080", rounds=1, deadline_s=300.0)


# --- the source ---


def ffmpeg(*args: str, timeout: float = 600) -> None:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise harness.BenchError(f"ffmpeg {' '.join(args[:6])} … failed: {proc.stderr.strip()[-500:]}")


def make_source(profile: Profile, cache: Path) -> Path:
    """A source of at least ``source_mib``: a 1 s lossless clip of noise, joined N times (-c copy)."""
    source = cache / f"source-{profile.source_mib}MiB-{profile.clip_size}.mp4"
    if source.exists():
        return source
    cache.mkdir(parents=True, exist_ok=True)
    clip = cache / f"clip-{profile.clip_size}.mp4"
    if not clip.exists():
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={profile.clip_size}:rate=30:duration=1",
               "-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
               "-pix_fmt", "yuv420p", "-g", "30", f"{clip}.tmp.mp4")
        Path(f"{clip}.tmp.mp4").rename(clip)
    copies = max(1, math.ceil(profile.source_mib * MIB / clip.stat().st_size))
    listing = cache / "concat.txt"
    listing.write_text("".join(f"file '{clip}'\n" for _ in range(copies)))
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-movflags", "+faststart",
           f"{source}.tmp.mp4")
    Path(f"{source}.tmp.mp4").rename(source)
    return source


# --- the store: a real nginx WebDAV server and the agent's own client ---

# FFmpeg's options for reading an HTTP input itself: the agent's own (``input_fetch: stream``)
STREAM_OPTIONS = ["-rw_timeout", str(RW_TIMEOUT_US), *HTTP_RECONNECT]


class Store:
    """The store under test, reached through ``ffrtmp.media`` as an agent reaches it."""

    def __init__(self, server: WebDavStore) -> None:
        self.server = server
        self.client = WebDav(load_credentials(str(server.netrc)))
        self.tries = 0

    def url(self, remote: str) -> str:
        return self.server.url + remote

    def download(self, remote: str, local: Path) -> None:
        self.client.download(self.url(remote), local)

    def upload(self, local: Path, remote: str) -> None:
        self.tries += 1
        self.client.upload(local, self.url(remote), tag=f"bench{self.tries}")

    def stream_input_args(self, remote: str) -> list[str]:
        """FFmpeg reading the URL. The store wants Basic auth; a header stands in for a presigned URL."""
        token = base64.b64encode(":".join(self.server.auth()).encode()).decode()
        return [*STREAM_OPTIONS, "-headers", f"Authorization: Basic {token}\r\n", "-i", self.url(remote)]


@contextlib.contextmanager
def running_store(base: Path) -> Iterator[Store]:
    server = start_webdav(base)
    try:
        yield Store(server)
    finally:
        server.stop()


# --- timing ---


def timed(action: Any, *args: Any) -> float:
    started = time.monotonic()
    action(*args)
    return time.monotonic() - started


def measured(action: Any, *args: Any) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of the child processes (FFmpeg), and what ``action`` returned.

    On a busy machine the wall time swings with the load; the CPU time of the same encode
    does not, so the two together tell a slower transfer from a starved encode.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    value = action(*args)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), value


def fresh(path: Path) -> Path:
    """``path``, removed if it exists, so every round writes a new file."""
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    return path


def copy(source: Path, target: Path) -> None:
    """The baseline: ``cp``, then fsync the copy, as the store's download does before its rename."""
    subprocess.run(["cp", str(source), str(target)], check=True, timeout=600)
    with target.open("rb") as file:
        os.fsync(file.fileno())


def rounds(profile: Profile, run: harness.Run) -> Iterator[int]:
    for i in range(profile.rounds):
        run.check_deadline()
        yield i


# --- 1. transfer ---


def bench_transfer(profile: Profile, run: harness.Run, store: Store, source: Path, work: Path,
                   log: harness.Log) -> dict[str, Any]:
    """cp against the store's download and upload of the same file, interleaved round by round."""
    size = source.stat().st_size
    remote = "/bench/source.mp4"
    store.upload(source, remote)  # the store's copy the downloads read
    times: dict[str, list[float]] = {"cp": [], "download": [], "upload": []}
    for i in rounds(profile, run):
        times["cp"].append(timed(copy, source, fresh(work / "copy.mp4")))
        times["download"].append(timed(store.download, remote, fresh(work / "download.mp4")))
        if (work / "download.mp4").stat().st_size != size:
            raise harness.BenchError("the downloaded copy has the wrong size")
        times["upload"].append(timed(store.upload, source, f"/bench/upload-{i}.mp4"))
        log(f"transfer round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    result: dict[str, Any] = {"bytes": size}
    for name, seconds in times.items():
        wall = harness.median(seconds)
        result[name] = {"seconds": [round(s, 3) for s in seconds], "median_s": round(wall, 3),
                        "mb_per_s": round(size / 1e6 / wall, 1)}
    for name in ("download", "upload"):
        result[name]["vs_cp"] = round(result["cp"]["median_s"] / result[name]["median_s"], 3)
    return result


# --- 2. encode wall: local, staged, streamed ---


def encode_local(workload: str, source: Path, work: Path) -> None:
    ffmpeg("-i", str(source), *WORKLOADS[workload], str(fresh(work / f"{workload}-local.mp4")))


def encode_staged(workload: str, store: Store, remote: str, work: Path) -> float:
    """Download into the inbox, then encode the copy; returns the download's seconds."""
    staged = fresh(work / "inbox" / "input.mp4")
    staged.parent.mkdir(parents=True, exist_ok=True)
    download_s = timed(store.download, remote, staged)
    ffmpeg("-i", str(staged), *WORKLOADS[workload], str(fresh(work / f"{workload}-staged.mp4")))
    return download_s


def encode_streamed(workload: str, store: Store, remote: str, work: Path) -> None:
    ffmpeg(*store.stream_input_args(remote), *WORKLOADS[workload],
           str(fresh(work / f"{workload}-streamed.mp4")))


def bench_encode(profile: Profile, run: harness.Run, store: Store, source: Path, work: Path,
                 log: harness.Log) -> dict[str, Any]:
    """Each workload's wall time in the three modes, interleaved, and each mode's ratio to local."""
    remote = "/bench/source.mp4"
    store.upload(source, remote)
    result: dict[str, Any] = {}
    for workload, argv in WORKLOADS.items():
        runs: dict[str, list[tuple[float, float, Any]]] = {"local": [], "staged": [], "streamed": []}
        for i in rounds(profile, run):
            runs["local"].append(measured(encode_local, workload, source, work))
            runs["staged"].append(measured(encode_staged, workload, store, remote, work))
            runs["streamed"].append(measured(encode_streamed, workload, store, remote, work))
            log(f"{workload} round {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f} s" for k, v in runs.items()))
        result[workload] = summarize_modes(runs)
        result[workload]["argv"] = argv
    return result


def summarize_modes(runs: dict[str, list[tuple[float, float, Any]]]) -> dict[str, Any]:
    """Per mode: wall seconds, their median and ratio to local, FFmpeg's CPU seconds."""
    local = harness.median([wall for wall, _, _ in runs["local"]])
    summary: dict[str, Any] = {}
    for mode, samples in runs.items():
        walls = [wall for wall, _, _ in samples]
        summary[mode] = {"seconds": [round(w, 3) for w in walls], "median_s": round(harness.median(walls), 3),
                         "ratio": round(harness.median(walls) / local, 3),
                         "ffmpeg_cpu_s": round(harness.median([cpu for _, cpu, _ in samples]), 3)}
    summary["staged"]["download_s"] = round(harness.median([d for _, _, d in runs["staged"]]), 3)
    return summary


# --- the run ---


def machine() -> dict[str, Any]:
    ffmpeg_version = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True,
                                    timeout=30, check=False).stdout.split("\n", 1)[0]
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=30,
                                   check=False).stderr.strip()
    return harness.machine(ffmpeg=" ".join(ffmpeg_version.split()[:3]), nginx=nginx_version)


def run(profile: Profile, *, log: harness.Log, workdir: Path | None = None, cache: Path = CACHE,
        only: Sequence[str] = SCENARIOS) -> dict[str, Any]:
    """Make (or reuse) the source, start the store, measure each scenario, stop the store."""
    bench_run = harness.Run(profile)
    result = {**bench_run.header("media"), "machine": machine()}
    started = time.monotonic()
    source = make_source(profile, cache)
    result["source"] = {"bytes": source.stat().st_size, "frame_size": profile.clip_size,
                        "made_or_reused_s": round(time.monotonic() - started, 1)}
    log(f"source: {source} ({source.stat().st_size / MIB:.0f} MiB)")
    with harness.scratch(workdir, "ffrtmp-media-bench-") as base, running_store(base / "store") as store:
        work = base / "work"
        work.mkdir(parents=True, exist_ok=True)
        if "transfer" in only:
            result["transfer"] = bench_transfer(profile, bench_run, store, source, work, log)
        if "encode" in only:
            result["encode"] = bench_encode(profile, bench_run, store, source, work, log)
    return bench_run.finish(result, lambda r: {})


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [harness.title(result, f"{m['ffmpeg']}, {m['nginx']}"),
             f"source: {result['source']['bytes'] / MIB:.0f} MiB H.264 {result['source']['frame_size']}, "
             f"{result['profile']['rounds']} round(s), medians", ""]
    if "transfer" in result:
        t = result["transfer"]
        lines += [f"{'transfer':<28}{'seconds':>10}{'MB/s':>10}{'vs cp':>8}"]
        for name, label in (("cp", "cp + fsync (baseline)"), ("download", "store download (GET)"),
                            ("upload", "store upload (PUT, MOVE)")):
            ratio = f"{t[name]['vs_cp']:.2f}" if "vs_cp" in t[name] else "1.00"
            lines.append(f"{label:<28}{t[name]['median_s']:>10.2f}{t[name]['mb_per_s']:>10.1f}{ratio:>8}")
        lines.append("")
    for workload, modes in result.get("encode", {}).items():
        lines += [f"{workload:<28}{'seconds':>10}{'vs local':>10}{'ffmpeg CPU s':>14}"]
        for mode, label in (("local", "local file (baseline)"), ("staged", "staged (download, encode)"),
                            ("streamed", "streamed (ffmpeg reads URL)")):
            one = modes[mode]
            lines.append(f"{label:<28}{one['median_s']:>10.2f}{one['ratio']:>10.2f}{one['ffmpeg_cpu_s']:>14.2f}")
        lines.append(f"{'  of which the download':<28}{modes['staged']['download_s']:>10.2f}")
        lines.append("")
    lines.append(harness.load_line(m, "the figures are pessimistic"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    cli = harness.parser(__doc__, SCENARIOS, "a 50 MiB source and one round")
    cli.add_argument("--rounds", type=int, help=f"interleaved rounds of every measurement (default "
                     f"{FULL.rounds}, quick {QUICK.rounds}); more steady the medians on a busy machine")
    args = cli.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.rounds:
        profile = dataclasses.replace(profile, rounds=args.rounds,
                                      deadline_s=profile.deadline_s * args.rounds / profile.rounds)
    only = tuple(args.only or SCENARIOS)
    return harness.execute(lambda log: run(profile, log=log, only=only), render, args.out)


if __name__ == "__main__":
    sys.exit(main())
