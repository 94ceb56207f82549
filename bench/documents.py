"""Seeded benchmark events, serialised once for both arms.

Each event has 19 leaf fields and about 600 bytes of JSON, with realistic cardinalities (a few
systems and types, a hundred agents, UUID ids). Timestamps are already normalised (UTC,
milliseconds, `Z`), so the document HQ stores is exactly the event plus `space`, and the direct
loader can send the identical document with the identical `_id` into the identical index.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

SPACE = "bench"
TOKEN = "bench-token"  # noqa: S105 - a benchmark token for a throwaway HQ

_SYSTEMS = ["checkout", "search", "billing", "inventory", "auth"]
_TYPES = [
    f"{kind}/{metric}" for kind in ("os", "jvm", "http") for metric in ("cpu", "memory", "requests")
]
_WORDS = [
    "order",
    "cart",
    "payment",
    "user",
    "session",
    "cache",
    "index",
    "query",
    "timeout",
    "retry",
    "shard",
    "node",
]


def _instant(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def make_events(count: int, seed: int = 7, unicode: bool = False) -> list[dict[str, Any]]:
    """`count` valid events with timestamps spread over the ten minutes before now."""
    return list(iter_events(count, seed, unicode))


def iter_events(count: int, seed: int = 7, unicode: bool = False) -> Iterator[dict[str, Any]]:
    """`make_events`, one at a time: a pool of millions never holds them all as dicts."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(minutes=10)
    step = 600.0 / max(count, 1)
    for i in range(count):
        system = rng.choice(_SYSTEMS)
        moment = start + timedelta(seconds=i * step)
        words = " ".join(rng.choice(_WORDS) for _ in range(4))
        if unicode:
            words = "Zürich 東京 Ελλάδα " + words + " ✓"
        yield (
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "type": rng.choice(_TYPES),
                "system": system,
                "agent-id": f"{system}-agent-{rng.randrange(20)}",
                "timestamp": _instant(moment),
                "boolean-properties": {"cached": rng.random() < 0.3},
                "date-properties": {"started": _instant(moment - timedelta(hours=rng.random()))},
                "double-properties": {
                    "system_cpu_load": round(rng.random(), 4),
                    "response_seconds": rng.expovariate(20.0),
                },
                "float-properties": {"ratio": round(rng.random(), 3)},
                "integer-properties": {
                    "status": rng.choice((200, 200, 200, 201, 204, 404, 500)),
                    "processor_count": rng.choice((2, 4, 8, 16)),
                },
                "long-properties": {
                    "total_memory": rng.randrange(2**30, 2**36),
                    "bytes_sent": rng.randrange(10**9),
                },
                "string-properties": {
                    "host": f"{system}-{rng.randrange(40):02d}.example.net",
                    "path": f"/api/{rng.choice(_WORDS)}/{rng.randrange(10**6)}",
                    "method": rng.choice(("GET", "GET", "PUT", "POST")),
                    "message": words,
                },
            }
        )


def index_of(prefix: str, event: dict[str, Any]) -> str:
    timestamp = event["timestamp"]
    return f"{prefix}-{SPACE}-{timestamp[:4]}.{timestamp[5:7]}"


@dataclass
class Pool:
    """The same events as HQ request items (`wire`) and, built from them when asked, as
    `_bulk` action + document lines (the stored document is the event plus `space`)."""

    wire: list[bytes]
    actions: list[bytes]

    @classmethod
    def generate(cls, count: int, prefix: str, seed: int = 7) -> Pool:
        # msgspec, not orjson: orjson's small results keep a 4 KiB buffer each, which made a
        # pool of millions take gigabytes.
        wire, actions = [], []
        for event in iter_events(count, seed):
            wire.append(msgspec.json.encode(event))
            action = {"create": {"_index": index_of(prefix, event), "_id": event["id"]}}
            actions.append(msgspec.json.encode(action))
        return cls(wire, actions)

    def __len__(self) -> int:
        return len(self.wire)

    def hq_bodies(self, count: int, size: int) -> list[bytes]:
        """JSON array bodies of `size` events for HQ, covering the first `count` events."""
        return [
            b"[" + b",".join(self.wire[i : min(i + size, count)]) + b"]"
            for i in range(0, count, size)
        ]

    def bulk_bodies(self, count: int, size: int) -> list[bytes]:
        """NDJSON `_bulk` bodies of the same events, split the same way."""
        space = b',"space":"' + SPACE.encode() + b'"}\n'
        lines = [
            action + b"\n" + event[:-1] + space
            for action, event in zip(self.actions[:count], self.wire[:count], strict=True)
        ]
        return [b"".join(lines[i : i + size]) for i in range(0, count, size)]
