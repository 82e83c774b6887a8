"""The lifecycle rules as SQL transactions, written once for every database ffrtmp supports.

Each state change is one transaction. SQLite serialises writers (``BEGIN IMMEDIATE``);
PostgreSQL locks the rows a transaction decides on (``FOR UPDATE``) and lets concurrent
claims pass each other (``SKIP LOCKED``). A dialect subclasses ``SqlStore`` and supplies its
connections and one transaction (see ``transactions.SqlCore``).
"""

from __future__ import annotations

from ffrtmp.master.store.attempts import AttemptsMixin
from ffrtmp.master.store.claims import ClaimsMixin
from ffrtmp.master.store.counts import CountsMixin
from ffrtmp.master.store.duties import DutiesMixin
from ffrtmp.master.store.heartbeats import HeartbeatsMixin
from ffrtmp.master.store.jobs import JobsMixin
from ffrtmp.master.store.masters import MastersMixin
from ffrtmp.master.store.migrations import SchemaMixin
from ffrtmp.master.store.nodes import NodesMixin
from ffrtmp.master.store.progress import ProgressMixin
from ffrtmp.master.store.queuestats import QueueStatsMixin


class SqlStore(SchemaMixin, JobsMixin, NodesMixin, HeartbeatsMixin, ClaimsMixin, AttemptsMixin,
               DutiesMixin, CountsMixin, MastersMixin, ProgressMixin, QueueStatsMixin):
    """Every ``protocol.Store`` method, on the connections a dialect provides."""
