"""What ``run`` and ``attach`` share: paths, atomic files, options, and the follow loop.

The follow loop is the only place the wrapper waits. Signal handlers merely queue the signal
and poke a pipe (``signal.set_wakeup_fd``), so the loop wakes at once, and all logging, file
writes and cancel signals happen here, in plain code, never inside a handler.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import logging
import os
import select
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from ffrtmp import logs
from ffrtmp.wrapper.cmdline import DEFAULT_LOG_DIR, DEFAULT_STATE_DIR, EX_SETUP, WrapperCall

log = logging.getLogger("ffrtmp.wrapper")


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


PRIVATE = 0o600  # the mode of every file that holds a credential or a token


def write_json_atomic(path: Path, data: Mapping[str, Any] | list[Any], *,
                      exclusive: bool = False, mode: int = 0o644) -> None:
    """Write ``data`` so readers see the old file or the new one, never a torn one.

    Temp file in the same directory, fsync, then rename (or, with ``exclusive``, a hard link,
    which fails with FileExistsError instead of replacing: no check-then-rename race), then
    fsync the directory so the new name survives a power cut. A file that holds a secret
    passes ``mode=PRIVATE``: it is never readable by others, not even for a moment.
    """
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            os.fchmod(tmp_file.fileno(), mode)  # mkstemp's 0600 would hide it from operators
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


def open_job_dir(args: WrapperCall, extra: Mapping[str, Any]) -> tuple[Path, JobPaths] | int:
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


def setup_logging(call: WrapperCall, environ: Mapping[str, str]) -> dict[str, Any]:
    """wrapper.log + stdout; stdout alone if no log file can be opened (the job still runs).

    A wrapper serves exactly one job, so every record it logs, from any module, is stamped
    with that job's ``job=``, ``attempt=`` and ``node=``. Returns those fields as ``extra``.
    """
    directory = call.log_dir or environ.get("FFRTMP_LOG_DIR") or DEFAULT_LOG_DIR
    chosen_level = call.log_level or environ.get("FFRTMP_LOG_LEVEL") or "info"
    extra = logs.fields(job=call.job_id, attempt=call.attempt, node=call.node)
    problem = None
    try:
        logs.setup("wrapper", "wrapper.log", log_dir=directory, level=chosen_level)
    except OSError as exc:
        logs.setup_stdout(level=chosen_level)
        problem = exc
    for handler in logging.getLogger().handlers:
        handler.addFilter(_JobFields(extra))
    if problem is not None:
        log.error("cannot open wrapper.log (%s); logging to stdout only", problem)
    return extra


class _JobFields(logging.Filter):
    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__()
        self.values = dict(values)

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.values.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


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
