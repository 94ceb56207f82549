"""A batch of `PUT /events`, decoded by the fastest path that takes it.

Two implementations of the event rules, no more: the C fast path (`transcoder`) writes a
common batch straight into its `_bulk` lines, or declines; the thorough decoder
(`logspace.decoder`) checks, normalises and explains everything else. The fast path only
ever produces what the thorough one would (tests/ingest/test_transcoder.py holds them to it).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from logspace import fastpath
from logspace.decoder import decode
from logspace.events import DEFAULT_LIMITS, Limits, Unindexed, unindexed
from logspace.ingest import transcoder
from logspace.ingest.budget import Batch, Use, fields_of, uses_in
from logspace.partitions import Partition

__all__ = ["Decoded", "decode_batch"]


class Decoded:
    """A batch the thorough decoder checked: its events as dicts, the property fields they use."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events: list[Any] = events
        self._fields = fields_of(events)
        self.unindexed: Unindexed = unindexed(events)

    @property
    def fields(self) -> Collection[str]:
        return self._fields

    def uses(self, fields: Collection[str]) -> list[Use]:
        return uses_in(self.events, fields)


def decode_batch(
    body: bytes,
    space: str,
    limits: Limits = DEFAULT_LIMITS,
    *,
    prefix: str,
    partition: Partition = "month",
    now: datetime | None = None,
) -> Batch:
    """The batch's events, for `space` in indices under `prefix` by `partition`: as `_bulk`
    lines written in C when the fast path takes the batch, else as the thorough decoder's
    dicts. Either way they go to `Store.write` (with the same `space`, and a store of the same
    partition)."""
    clock = time.time()
    # The C path compares with whole seconds (see `fastpath._rules`): one instant a second.
    newest = fastpath.newest_at(limits, clock) if now is None else now + limits.max_future
    transcoded = transcoder.transcode(body, space, prefix, limits, newest, partition)
    if transcoded is not None:
        return transcoded
    if now is None:
        now = datetime.fromtimestamp(clock, UTC)
    newest = now + limits.max_future
    # Events the C path would take alone need no second look in Python: a batch with a few
    # bad events costs about what a good one does.
    vouched = fastpath.plain_events(body, limits, newest)
    return Decoded(decode(body, limits, now=now, vouched=vouched))
