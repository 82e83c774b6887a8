"""What ``run`` and ``attach`` share: paths, atomic files, options, and the follow loop.

The follow loop is the only place the wrapper waits. Signal handlers merely queue the signal
and poke a pipe (``signal.set_wakeup_fd``), so the loop wakes at once, and all logging, file
writes and cancel signals happen here, in plain code, never inside a handler.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import enum
import json
import logging
import os
import re
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from ffrtmp import logs

log = logging.getLogger("ffrtmp.wrapper")

DEFAULT_STATE_DIR = "/var/lib/ffrtmp/worker"
DEFAULT_LOG_DIR = "/var/log/ffrtmp"
DEFAULT_CANCEL_GRACE_S = 10.0
EX_SETUP = 2  # refused before anything started or was written (argparse uses 2 as well)

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


# --- time and files ---------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, the form every ffrtmp timestamp uses."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Mapping[str, Any] | list[Any], *,
                      exclusive: bool = False) -> None:
    """Write ``data`` so readers see the old file or the new one, never a torn one.

    Temp file in the same directory, fsync, then rename (or, with ``exclusive``, a hard link,
    which fails with FileExistsError instead of replacing: no check-then-rename race), then
    fsync the directory so the new name survives a power cut.
    """
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            os.fchmod(tmp_file.fileno(), 0o644)  # mkstemp's 0600 would hide it from operators
            tmp_file.write(payload)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        if exclusive:
            _link_exclusive(tmp, path)
        else:
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        path.hardlink_to(tmp)
    except FileExistsError:
        raise
    except OSError:
        # A filesystem without hard links: check, then rename (racy only against another
        # writer of the same job directory, which the agent never starts).
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- where things live ------------------------------------------------------------------


@dataclass(frozen=True)
class JobPaths:
    """The files of one job directory, as the agent reads them."""

    job_dir: Path

    @property
    def wrapper_json(self) -> Path:
        return self.job_dir / "wrapper.json"

    @property
    def result_json(self) -> Path:
        return self.job_dir / "result.json"

    @property
    def output_log(self) -> Path:
        return self.job_dir / "output.log"

    @property
    def progress(self) -> Path:
        return self.job_dir / "progress.txt"


def job_dir_for(state_dir: Path, job_id: str) -> Path:
    return state_dir / "wrapper" / "jobs" / job_id


def resolve_state_dir(flag: str | None, environ: Mapping[str, str]) -> Path:
    """``--state-dir``, else FFRTMP_STATE_DIR, else the default; ./state when not writable."""
    chosen = Path(flag or environ.get("FFRTMP_STATE_DIR") or DEFAULT_STATE_DIR)
    for candidate in (chosen, Path.cwd() / "state"):
        try:
            (candidate / "wrapper").mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate / "wrapper", os.W_OK | os.X_OK):
            if candidate != chosen:
                log.warning("state dir %s is not writable; using %s", chosen, candidate)
            return candidate
    raise OSError(f"cannot write the state dir {chosen} or ./state")


def open_job_dir(args: argparse.Namespace, extra: Mapping[str, Any]) -> tuple[Path, JobPaths] | int:
    """The state dir and the job's files, created; EX_SETUP (logged) when it can't be used.

    A job directory that already holds a result.json is refused: an attempt is recorded once.
    """
    try:
        state_dir = resolve_state_dir(args.state_dir, os.environ)
        paths = JobPaths(Path(args.job_dir) if args.job_dir else job_dir_for(state_dir, args.job_id))
        paths.job_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot prepare the job directory: %s", exc, extra=extra)
        return EX_SETUP
    if paths.result_json.exists():
        log.error("%s exists: that attempt is recorded; give this one a fresh --job-dir",
                  paths.result_json, extra=extra)
        return EX_SETUP
    return state_dir, paths


def setup_logging(log_dir: str | None, level: str | None, environ: Mapping[str, str]) -> None:
    """wrapper.log + stdout; stdout alone if no log file can be opened (the job still runs)."""
    directory = log_dir or environ.get("FFRTMP_LOG_DIR") or DEFAULT_LOG_DIR
    chosen_level = level or environ.get("FFRTMP_LOG_LEVEL") or "info"
    try:
        logs.setup("wrapper", "wrapper.log", log_dir=directory, level=chosen_level)
    except OSError as exc:
        logging.basicConfig(stream=sys.stdout, level=chosen_level.upper(), force=True)
        log.error("cannot open wrapper.log (%s); logging to stdout only", exc)


# --- options ----------------------------------------------------------------------------


def job_id_arg(raw: str) -> str:
    """A job id is also a directory and cgroup name, so it must be one safe path component."""
    if not _JOB_ID.fullmatch(raw) or ".." in raw:
        raise argparse.ArgumentTypeError(
            "expected 1-128 characters of letters, digits, '.', '_' or '-'")
    return raw


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value


def seconds_arg(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("expected a number of seconds >= 0")
    return value


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """Options common to run and attach."""
    parser.add_argument("--job-id", required=True, type=job_id_arg)
    parser.add_argument("--attempt", type=positive_int, default=1)
    parser.add_argument("--intent", default=None, help="free-text label carried into the result")
    parser.add_argument("--node", default=None, help="node id added to log lines (node=)")
    parser.add_argument("--job-dir", default=None,
                        help="default: <state-dir>/wrapper/jobs/<job-id>")
    parser.add_argument("--state-dir", default=None,
                        help="default: $FFRTMP_STATE_DIR or " + DEFAULT_STATE_DIR)
    parser.add_argument("--log-dir", default=None,
                        help="default: $FFRTMP_LOG_DIR or " + DEFAULT_LOG_DIR)
    parser.add_argument("--log-level", default=None, help="default: $FFRTMP_LOG_LEVEL or info")
    parser.add_argument("--cancel-grace", type=seconds_arg, default=DEFAULT_CANCEL_GRACE_S,
                        help="seconds between SIGTERM and SIGKILL on cancel (default 10)")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """Parse or return the exit status argparse chose (0 for --help, 2 for bad usage)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EX_SETUP


# --- signals and the follow loop --------------------------------------------------------


class Action(enum.Enum):
    IGNORE = "ignore"  # log it and keep following
    DETACH = "detach"  # leave: record nothing, touch nothing, exit 0
    CANCEL = "cancel"  # operator cancel: TERM the workload's group, KILL after the grace


class SignalInbox:
    """Queues signals for the follow loop; a handler does nothing else.

    Python handlers (never SIG_IGN) are used even for "ignore": a caught signal is reset to
    its default by exec, so the workload starts with the dispositions it would have had
    without us.
    """

    def __init__(self, policy: Mapping[signal.Signals, Action],
                 wake_on: tuple[signal.Signals, ...] = ()) -> None:
        self.policy = dict(policy)
        self._pending: collections.deque[signal.Signals] = collections.deque()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*self.policy, *wake_on):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in self.policy:
            self._pending.append(signal.Signals(signum))

    def take(self) -> list[signal.Signals]:
        """Signals queued so far, oldest first; one arriving meanwhile stays for next time."""
        taken = []
        while self._pending:
            taken.append(self._pending.popleft())
        return taken

    def sleep(self, timeout: float) -> None:
        """Wait up to ``timeout`` s; any signal (a queued one or SIGCHLD) ends it early."""
        readable, _, _ = select.select([self._read_fd], [], [], max(timeout, 0.0))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 512):
                    pass


class Canceler:
    """Operator cancel: SIGTERM now, SIGKILL once the grace has passed, each sent once."""

    def __init__(self, send: Callable[[signal.Signals], None], grace_s: float,
                 extra: dict[str, Any], on_request: Callable[[], None] | None = None) -> None:
        self._send = send
        self.grace_s = grace_s
        self._extra = extra
        self._on_request = on_request
        self.requested_at: float | None = None
        self.killed = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self, now: float) -> None:
        if self.requested_at is not None:
            log.info("cancel already in progress", extra=self._extra)
            return
        self.requested_at = now
        log.warning("cancel requested: SIGTERM to the workload, SIGKILL after %.1fs",
                    self.grace_s, extra=self._extra)
        if self._on_request is not None:
            self._on_request()
        self._send(signal.SIGTERM)

    def seconds_left(self, now: float) -> float | None:
        if self.requested_at is None or self.killed:
            return None
        return self.requested_at + self.grace_s - now

    def tick(self, now: float) -> None:
        left = self.seconds_left(now)
        if left is not None and left <= 0:
            self.killed = True
            log.warning("workload still running %.1fs after SIGTERM: SIGKILL", self.grace_s,
                        extra=self._extra)
            self._send(signal.SIGKILL)


@dataclass(frozen=True)
class Ended:
    """The workload is gone. ``wait_status`` only for our own child; ``lost`` if unseeable."""

    wait_status: int | None = None
    lost: bool = False


@dataclass(frozen=True)
class Detached:
    signal_name: str


def follow(poll: Callable[[], Ended | None], inbox: SignalInbox, canceler: Canceler,
           interval_s: float, extra: dict[str, Any]) -> Ended | Detached:
    """Wait for the workload to end, acting on signals per the inbox's policy.

    The end is checked before signals, so a workload that ended as a SIGTERM arrived is
    still recorded rather than abandoned.
    """
    while True:
        ended = poll()
        if ended is not None:
            return ended
        now = time.monotonic()
        for signum in inbox.take():
            action = inbox.policy[signum]
            if action is Action.DETACH:
                return Detached(signum.name)
            if action is Action.IGNORE:
                log.info("%s ignored; still following the workload", signum.name, extra=extra)
            elif action is Action.CANCEL:
                canceler.request(now)
        canceler.tick(now)
        left = canceler.seconds_left(now)
        inbox.sleep(interval_s if left is None else min(interval_s, max(left, 0.0)))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
