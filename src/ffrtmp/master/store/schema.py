"""The schema, once for every database: forward-only migrations, applied at start.

Types that differ between databases are written as ``{serial}`` (an auto-increasing key)
and ``{real}`` (a float) and filled in by each store.
"""

from __future__ import annotations

_MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        credential_hash TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'online',
        draining INTEGER NOT NULL DEFAULT 0,
        slots INTEGER NOT NULL,
        encoders TEXT NOT NULL,
        hwaccels TEXT NOT NULL,
        labels TEXT NOT NULL,
        ffmpeg_version TEXT NOT NULL,
        agent_version TEXT NOT NULL,
        registered_at {real} NOT NULL,
        last_heartbeat {real} NOT NULL
    );
    CREATE TABLE jobs (
        seq {serial},
        id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        spec TEXT NOT NULL,
        queue_rank INTEGER NOT NULL,
        priority_rank INTEGER NOT NULL,
        capabilities TEXT NOT NULL,
        intent TEXT,
        node_id TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        progress TEXT,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL,
        finished_at {real}
    );
    CREATE INDEX jobs_dispatch ON jobs (state, queue_rank, priority_rank, seq);
    CREATE INDEX jobs_node ON jobs (node_id, state);
    CREATE INDEX jobs_finished ON jobs (state, finished_at);
    CREATE TABLE attempts (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        node_id TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        assigned_at {real} NOT NULL,
        lease_expires_at {real} NOT NULL,
        started_at {real},
        ended_at {real},
        result TEXT,
        log_tail TEXT,
        PRIMARY KEY (job_id, attempt)
    );
    CREATE INDEX attempts_lease ON attempts (state, lease_expires_at);
    CREATE TABLE transitions (
        id {serial},
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        at {real} NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        node_id TEXT,
        reason TEXT NOT NULL
    );
    CREATE INDEX transitions_job ON transitions (job_id, id);
    CREATE TABLE histograms (
        metric TEXT NOT NULL,
        le {real} NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (metric, le)
    );
    CREATE TABLE histogram_sums (
        metric TEXT PRIMARY KEY,
        total {real} NOT NULL DEFAULT 0,
        count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE duties (
        name TEXT PRIMARY KEY,
        next_run_at {real} NOT NULL
    );
    """,
    # 2: when a node's heartbeats first stopped listing a running attempt (reconciliation)
    """
    ALTER TABLE attempts ADD COLUMN unlisted_since {real};
    """,
    # 3: split jobs: a child names its parent; ``step`` is '' for an ordinary job, else a Step
    """
    ALTER TABLE jobs ADD COLUMN parent_id TEXT;
    ALTER TABLE jobs ADD COLUMN step TEXT NOT NULL DEFAULT '';
    CREATE INDEX jobs_parent ON jobs (parent_id, seq);
    """,
    # 4: claims and metrics that cost the same at any queue depth. ``jobs_queued`` holds only
    # what a node may claim, by capability set and then in dispatch order, so a claim seeks
    # the head of each set it can run. ``job_counts`` holds, per key and writer (``shard``),
    # the number of jobs in each state (split jobs count as their parts) and under
    # ``queue_version`` how often a job became queued: the long-polls' marker.
    """
    DROP INDEX jobs_dispatch;
    CREATE INDEX jobs_queued ON jobs (capabilities, queue_rank, priority_rank, seq)
        WHERE state = 'queued' AND step <> 'split';
    CREATE TABLE job_counts (
        key TEXT NOT NULL,
        shard BIGINT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (key, shard)
    );
    INSERT INTO job_counts (key, shard, n)
        SELECT state, 0, COUNT(*) FROM jobs WHERE step <> 'split' GROUP BY state;
    INSERT INTO job_counts (key, shard, n) VALUES ('queue_version', 0, 0);
    """,
    # 5: the masters sharing this database (each announces itself from its duty thread, keyed
    # by its API address), and which of them last ran each duty, and when
    """
    CREATE TABLE masters (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        started_at {real} NOT NULL,
        last_seen {real} NOT NULL
    );
    ALTER TABLE duties ADD COLUMN holder TEXT;
    ALTER TABLE duties ADD COLUMN held_at {real};
    """,
    # 6: a node's readiness as its agent last reported it (NULL: an agent that does not say),
    # and since when a drained node's agent said it stopped for maintenance (status 'maintenance')
    """
    ALTER TABLE nodes ADD COLUMN ready INTEGER;
    ALTER TABLE nodes ADD COLUMN ready_reason TEXT;
    ALTER TABLE nodes ADD COLUMN maintenance_since {real};
    """,
    # 7: the history by time, so the queue's last hour (``queuestats``) reads that hour only
    """
    CREATE INDEX transitions_at ON transitions (at);
    """,
    # 8: the agent's id for the claim message that made an attempt, so that the same message
    # sent again (its reply was lost: a master killed, a connection cut) is answered with the
    # attempts it made rather than with new ones (``claims``); NULL for agents that send none
    """
    ALTER TABLE attempts ADD COLUMN claim_id TEXT;
    CREATE INDEX attempts_claim ON attempts (node_id, claim_id) WHERE claim_id IS NOT NULL;
    """,
)


def migrations(*, serial: str, real: str) -> tuple[str, ...]:
    return tuple(m.replace("{serial}", serial).replace("{real}", real) for m in _MIGRATIONS)
