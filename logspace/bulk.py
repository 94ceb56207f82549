"""Events -> `_bulk` request bodies; `_bulk` responses -> what happened to each event. Pure.

Every event is written with op_type `create` and `_id` = its id into
`<prefix>-<space>-<yyyy.mm>` (the month of its own timestamp, UTC), so sending a batch
again lands on the same documents: Elasticsearch answers 409 and the event counts as stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "RESPONSE_FILTER",
    "BulkResult",
    "Rejection",
    "WriteOutcome",
    "chunks",
    "classify",
    "encode",
    "index_name",
]

# Only what `classify` reads; Elasticsearch then sends (and we parse) far less.
RESPONSE_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason"


def index_name(prefix: str, space: str, timestamp: str) -> str:
    """`timestamp` is normalised (`YYYY-MM-DDT...Z`), so the month is at fixed positions."""
    return f"{prefix}-{space}-{timestamp[:4]}.{timestamp[5:7]}"


def encode(events: Sequence[dict[str, Any]], space: str, prefix: str) -> list[bytes]:
    """One `create` action plus document per event, each as NDJSON lines."""
    lines = []
    for event in events:
        event["space"] = space
        index = index_name(prefix, space, event["timestamp"])
        lines.append(
            b"".join(
                (
                    b'{"create":{"_index":"',
                    index.encode(),
                    b'","_id":',
                    orjson.dumps(event["id"]),
                    b"}}\n",
                    orjson.dumps(event),
                    b"\n",
                )
            )
        )
    return lines


def chunks(lines: Sequence[bytes], positions: Sequence[int], max_bytes: int) -> Iterator[list[int]]:
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


@dataclass(frozen=True)
class WriteOutcome:
    """What storing one batch did: events created now, and events already stored (409)."""

    created: int = 0
    duplicate: int = 0
    # Passes that re-sent events Elasticsearch could not take (429, 5xx, unreachable).
    retries: int = 0


def classify(response: dict[str, Any], positions: Sequence[int]) -> BulkResult:
    """Stored (201) and already stored (409, listed in `duplicates`) are done; 429 and 5xx
    may be retried; other statuses are final. `positions` maps the response items back to
    the batch."""
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
        elif status == 429 or status >= 500:
            result.retry.append(position)
        else:
            error = outcome.get("error") or {}
            result.rejected.append(
                Rejection(
                    position, status, str(error.get("type", "")), str(error.get("reason", ""))
                )
            )
    return result
