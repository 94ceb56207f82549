"""When the coalescer sends a shared `_bulk` request, and what goes into it. Pure.

Group commit: with no bulk in flight, what is waiting goes at once, so a lone request on an
idle HQ waits for nothing. While bulks are in flight, requests gather until the next bulk is
full (events or bytes) or its oldest request has waited `max_wait`, and go only when fewer
than `concurrency` bulks are in flight. The busier Elasticsearch is, the longer its bulks
take and the fuller the next ones get.

A request of half a bulk or more (`large`) goes at once in a bulk of its own, whatever is in
flight: sharing would only make it wait, since Elasticsearch's cost per event is about flat
from a few hundred events a bulk on (bench (a)'s sweep), and it holds no copy of its lines.
Coalescing is for the small requests of a fleet; a client that sends big batches is served as
if HQ did not coalesce.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["REASONS", "Decision", "FlushPolicy"]

# Why a bulk was sent: nothing else was in flight; it was full of events or bytes; its
# oldest request had waited long enough; HQ is shutting down; it had to go alone (a
# request that kept a shared bulk from being answered, or whose bulk failed as a whole);
# or it was a large request, which is never held back.
REASONS: Final = ("idle", "events", "bytes", "time", "shutdown", "alone", "large")


class Decision(NamedTuple):
    """`flush`: send a bulk now, for this reason. Else wait `after` seconds (None: until a
    bulk in flight is answered or another request arrives) and ask again."""

    flush: str | None
    after: float | None = None


@dataclass(frozen=True)
class FlushPolicy:
    max_events: int
    max_bytes: int
    max_wait: float
    concurrency: int

    def large(self, events: int, size: int) -> bool:
        """Whether a request of `events` events and `size` bytes is a bulk in its own right."""
        return 2 * events >= self.max_events or 2 * size >= self.max_bytes

    def decide(
        self, events: int, size: int, waited: float, in_flight: int, *, closing: bool = False
    ) -> Decision:
        """What to do with `events` events of `size` bytes waiting, the oldest for `waited`
        seconds, while `in_flight` bulks are in flight."""
        if not events:
            return Decision(None)
        if closing:
            return Decision("shutdown")
        if in_flight >= self.concurrency:
            return Decision(None)
        if not in_flight:
            return Decision("idle")
        if events >= self.max_events:
            return Decision("events")
        if size >= self.max_bytes:
            return Decision("bytes")
        if waited >= self.max_wait:
            return Decision("time")
        return Decision(None, self.max_wait - waited)

    def take(self, waiting: Iterable[tuple[int, int]]) -> int:
        """How many of the waiting requests, given in order as (events, bytes), go into the
        next bulk: at least one, then as many as keep it within both bounds."""
        taken = events = size = 0
        for count, length in waiting:
            if taken and (events + count > self.max_events or size + length > self.max_bytes):
                break
            taken += 1
            events += count
            size += length
        return taken
