"""The job and node vocabulary that the master, the agent, the CLI and the metrics share.

Every name a job, an attempt or a node can carry is declared here once, with the orders the
dispatcher sorts by. Nothing here imports from ffrtmp: this is the ground floor.

On ``lost``: an attempt is lost when its node stops heartbeating while it runs. The job is
not FINAL, because the node may come back and report the real result (``SETTLES_LATE``), and
an operator may retry it. But nothing happens to it on its own either: the master never
re-queues a lost job, since that would run the encode twice. So ``lost`` is AT_REST: someone
waiting for a job stops waiting, and the job stays visible, not final, until it settles.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its lifecycle; the value is what the API and the database carry."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    LOST = "lost"


class Step(StrEnum):
    """The parts of a split job; a job with no step is an ordinary job."""

    SPLIT = "split"  # the parent: never dispatched; its state derives from its children
    PLAN = "plan"  # probes the source, cuts it at keyframes (run by the agent itself)
    SEGMENT = "segment"  # encodes the video of one cut, every rung in one decode
    AUDIO = "audio"  # encodes the audio once for the whole file
    STITCH = "stitch"  # joins the segments without re-encoding, muxes the audio, delivers
    SWEEP = "sweep"  # removes the intermediates after a cancel (run by the agent itself)


class AttemptEnd(StrEnum):
    """How an attempt ends without a result of its own; the job moves on without it."""

    SUPERSEDED = "superseded"  # an operator's retry replaced it
    EXPIRED = "expired"  # its lease ran out before the node confirmed the start


class Outcome(StrEnum):
    """How an attempt ended, as the agent reports it; each is also the job's final state."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Queue(StrEnum):
    """Dispatch classes, in the order the dispatcher serves them."""

    LIVE = "live"
    DEFAULT = "default"
    BATCH = "batch"


class Priority(StrEnum):
    """Order within a queue."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class NodeStatus(StrEnum):
    """What the registry says of a node. The database holds online, offline or maintenance
    (a drained node whose agent said it stopped on purpose: its jobs are never made lost);
    draining is a flag, shown as the status of an online node that has it."""

    ONLINE = "online"
    OFFLINE = "offline"
    DRAINING = "draining"
    MAINTENANCE = "maintenance"


DEFAULT_QUEUE = Queue.DEFAULT
DEFAULT_PRIORITY = Priority.MEDIUM

# The most items a batch route takes (POST /jobs/batch, /nodes/{id}/starts, /results): the
# most slots a node registers, so one claim's assignments fit one batch.
MAX_BATCH = 256

# Lower rank is served first; the declaration order of each enum is its rank.
QUEUE_RANK: dict[str, int] = {queue.value: rank for rank, queue in enumerate(Queue)}
PRIORITY_RANK: dict[str, int] = {p.value: rank for rank, p in enumerate(Priority)}

# No transition leaves these except an operator's retry.
FINAL: frozenset[JobState] = frozenset(JobState(o.value) for o in Outcome)
# Nothing moves these on its own: FINAL, plus lost (see the module docstring).
AT_REST: frozenset[JobState] = FINAL | {JobState.LOST}
# An operator may retry a job in these states; it runs again as a new attempt.
RETRYABLE: frozenset[JobState] = frozenset({JobState.FAILED, JobState.CANCELED, JobState.LOST})
# A job here holds one of its node's slots.
BUSY: frozenset[JobState] = frozenset({JobState.ASSIGNED, JobState.RUNNING})
# A job here has no live attempt, so a cancel settles it at once.
UNSTARTED: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.ASSIGNED})
# Attempt states in which a node's late result is still accepted.
SETTLES_LATE: frozenset[JobState] = frozenset(
    {JobState.ASSIGNED, JobState.RUNNING, JobState.LOST})
