"""HQ: what the endpoints of every wing need, built once per app (and per worker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from logspace.body import Admission
from logspace.elastic.readstore import ReadStore
from logspace.elastic.store import EventStore
from logspace.events import Limits
from logspace.ingest.budget import FieldBudget
from logspace.ops.metrics import Metrics
from logspace.ops.shardwatch import ShardWatch
from logspace.settings import Settings
from logspace.spaces.tokens import TokenRegistry

__all__ = ["HQ"]


@dataclass
class HQ:
    settings: Settings
    tokens: TokenRegistry
    store: EventStore
    metrics: Metrics
    # The read side; None when the event store cannot be searched (e.g. an in-memory one).
    reader: ReadStore | None = None
    # The cluster's shards against its limit; None for a store that has no cluster.
    shards: ShardWatch | None = None
    limits: Limits = field(init=False)
    admission: Admission = field(init=False)
    budget: FieldBudget = field(init=False)

    def __post_init__(self) -> None:
        self.limits = self.settings.limits
        self.admission = Admission(self.settings.max_inflight_bytes)
        self.budget = FieldBudget(self.settings.max_fields_per_space)
