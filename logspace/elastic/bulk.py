"""Events -> `_bulk` request bodies; `_bulk` responses -> what happened to each event. Pure.

Every event is written with op_type `create` and `_id` = its id into
`<prefix>-<space>-<period>` (the month, quarter or year of its own timestamp, UTC: see
`logspace.partitions`), so sending a batch again lands on the same documents: Elasticsearch
answers 409 and the event counts as stored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, NamedTuple, overload

import orjson

from logspace.partitions import Partition, period

__all__ = [
    "RESPONSE_FILTER",
    "Bulk",
    "BulkResult",
    "Rejection",
    "WriteOutcome",
    "action_start",
    "chunks",
    "classify",
    "document_end",
    "encode",
    "error_text",
    "index_name",
]

# Only what `classify` reads; Elasticsearch then sends (and we parse) far less.
RESPONSE_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason"


def index_name(prefix: str, space: str, timestamp: str, partition: Partition = "month") -> str:
    """`timestamp` is normalised (`YYYY-MM-DDT...Z`)."""
    return f"{prefix}-{space}-{period(partition, timestamp)}"


# Made once per space: every request of a fleet asks for them again.
@functools.lru_cache(maxsize=4096)
def action_start(prefix: str, space: str) -> bytes:
    """An action line up to the period of its index name (prefix and space need no escaping)."""
    return b'{"create":{"_index":"%s-%s-' % (prefix.encode(), space.encode())


@functools.lru_cache(maxsize=4096)
def document_end(space: str) -> bytes:
    """What follows an event's own members in its document line."""
    return b',"space":%s}\n' % orjson.dumps(space)


class Bulk:
    """A `_bulk` request body: per event, a `create` action line and a document line.

    One bytes object, so a batch costs its size once while Elasticsearch works on it; indexed
    like a sequence (not one: mypyc, which compiles this module, gets `abc` subclasses wrong),
    item `i` is event `i`'s two lines (sliced out when a retry needs them). When
    its lines go in a bulk shared with other requests, it keeps them as a region of that
    bulk's body (`share`) rather than a second copy of its own.
    """

    def __init__(self, body: bytes, count: int) -> None:
        self._buffer = body
        self._start = 0
        self.size = len(body)
        self._count = count
        self._ends: list[int] | None = None

    @property
    def body(self) -> bytes:
        """Its lines as one bytes object: a copy only while they are part of a shared bulk."""
        if self._start == 0 and self.size == len(self._buffer):
            return self._buffer
        return self._buffer[self._start : self._start + self.size]

    def share(self, buffer: bytes, offset: int) -> None:
        """Its lines are now `buffer[offset:offset + size]` (a shared bulk's body)."""
        self._buffer, self._start = buffer, offset

    def unshare(self) -> None:
        """Back to a copy of its own lines, so that retrying some of them does not keep a
        shared bulk's whole body alive."""
        self._buffer, self._start = self.body, 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        for index in range(self._count):
            yield self[index]

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        ends = self._line_ends()
        start = ends[index - 1] if index > 0 else 0
        return self._buffer[self._start + start : self._start + ends[index]]

    def join(self, positions: Sequence[int]) -> bytes:
        """The request body for the events at `positions`."""
        if len(positions) == self._count and positions[-1] == self._count - 1:
            return self.body  # positions are distinct and ascending: every event, in order
        return b"".join([self[i] for i in positions])

    def event_id(self, index: int) -> Any:
        return self._action(index)["_id"]

    def indices(self, positions: Sequence[int]) -> list[str]:
        """The indices the events at `positions` go to, each once, in order."""
        return list(dict.fromkeys(str(self._action(i)["_index"]) for i in positions))

    def _action(self, index: int) -> dict[str, Any]:
        action: dict[str, Any] = orjson.loads(self[index].partition(b"\n")[0])["create"]
        return action

    def _line_ends(self) -> list[int]:
        # Documents are single-line JSON (encoders escape newlines), so lines end at b"\n".
        # Ends are relative to the start of its lines, so they hold whether shared or not.
        if self._ends is None:
            ends, buffer, start = [], self._buffer, self._start
            position = start
            for _ in range(self._count):
                position = buffer.index(b"\n", buffer.index(b"\n", position) + 1) + 1
                ends.append(position - start)
            self._ends = ends
        return self._ends


def encode(
    events: list[dict[str, Any]], space: str, prefix: str, partition: Partition = "month"
) -> Bulk:
    """One `create` action plus document per event, for events of `space` as the thorough
    decoder gives them. Sets their `space`."""
    if not events:
        return Bulk(b"", 0)
    for event in events:
        event["space"] = space
    ids = [event["id"] for event in events]
    timestamps = [event["timestamp"] for event in events]

    head = action_start(prefix, space)

    def start(timestamp: str) -> bytes:
        return b'%s%s","_id":' % (head, period(partition, timestamp).encode())

    # A batch usually falls in one period, so in one index: one start for every action.
    # (Periods grow with the timestamp, so the first and last decide.)
    if period(partition, min(timestamps)) == period(partition, max(timestamps)):
        starts: Iterable[bytes] = repeat(start(timestamps[0]))
    else:
        starts = map(start, timestamps)
    actions = map(bytes.__add__, starts, map(orjson.dumps, ids))
    parts = zip(actions, repeat(b"}}\n"), map(orjson.dumps, events), repeat(b"\n"))
    return Bulk(b"".join(chain.from_iterable(parts)), len(events))


def chunks(
    lines: Bulk | Sequence[bytes], positions: Sequence[int], max_bytes: int
) -> Iterator[list[int]]:
    """Split the events at `positions` into runs whose request bodies stay under `max_bytes`."""
    run: list[int] = []
    size = 0
    for position in positions:
        length = len(lines[position])
        if run and size + length > max_bytes:
            yield run
            run, size = [], 0
        run.append(position)
        size += length
    if run:
        yield run


@dataclass(frozen=True)
class Rejection:
    position: int
    status: int
    type: str
    reason: str


@dataclass
class BulkResult:
    """Outcome of one `_bulk` call, by position in the batch."""

    retry: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    # Elasticsearch's own words for the first event to retry, e.g. `429 cluster_block_exception:
    # index [...] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark...`
    retry_reason: str = ""
    # A cluster or index block (read-only, flood-stage disk), or the shard limit: retrying at
    # once will not help.
    blocked: bool = False


class WriteOutcome(NamedTuple):
    """What storing one batch did: events created now, and events already stored (409).
    (A named tuple: made for every request, at half a frozen dataclass's cost.)"""

    created: int = 0
    duplicate: int = 0
    # Passes that re-sent events Elasticsearch could not take (429, 5xx, unreachable).
    retries: int = 0


def classify(response: dict[str, Any], positions: Sequence[int]) -> BulkResult:
    """Stored (201) and already stored (409, listed in `duplicates`) are done; 429 and 5xx
    may be retried, and so may a new index refused for the cluster's shard limit (a 400, but
    the event is fine: `blocked`, as no quick retry helps); other statuses are final.
    `positions` maps the response items back to the batch."""
    result = BulkResult()
    if not response.get("errors"):
        return result
    items = response.get("items", [])
    if len(items) != len(positions):
        raise ValueError(f"bulk response has {len(items)} items for {len(positions)} actions")
    for position, item in zip(positions, items, strict=True):
        (outcome,) = item.values()
        status = int(outcome.get("status", 0))
        if status < 300:
            continue
        if status == 409:
            result.duplicates.append(position)
        elif status == 429 or status >= 500 or (status == 400 and _shard_limit(outcome)):
            result.retry.append(position)
            error = outcome.get("error") or {}
            if not result.retry_reason:
                result.retry_reason = f"{status} {error_text(error)}"
            result.blocked |= error.get("type") == "cluster_block_exception" or status == 400
        else:
            error = outcome.get("error") or {}
            result.rejected.append(
                Rejection(
                    position, status, str(error.get("type", "")), str(error.get("reason", ""))
                )
            )
    return result


def _shard_limit(outcome: dict[str, Any]) -> bool:
    """Whether a 400 is no fault of the event: its new index would take the cluster past
    `cluster.max_shards_per_node` (an operator must act; the event is fine)."""
    reason = str((outcome.get("error") or {}).get("reason", ""))
    return _SHARD_LIMIT.search(reason) is not None


# "maximum normal shards open" since 8.x, "maximum shards open" before.
_SHARD_LIMIT = re.compile(
    r"this action would add \[[0-9]+\] (total )?shards, but this cluster "
    r"currently has \[[0-9]+\]/\[[0-9]+\] maximum (normal )?shards open"
)

# An item's reason may end with the request, event source and all: that is left out.
_REQUEST_IN_REASON = ", request: ["
MAX_REASON_LENGTH = 300


def error_text(error: dict[str, Any]) -> str:
    """`type: reason` of an Elasticsearch error, without any event's content, at most
    `MAX_REASON_LENGTH` characters of reason."""
    reason = str(error.get("reason", "")).partition(_REQUEST_IN_REASON)[0]
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1] + "…"
    return f"{error.get('type', 'error')}: {reason}" if reason else str(error.get("type", "error"))
