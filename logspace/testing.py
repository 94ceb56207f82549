"""Helpers for testing code that sends events to HQ: an event builder and an in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from logspace.elastic.bulk import WriteOutcome
from logspace.errors import StoreUnavailable
from logspace.ingest.budget import fields_of

__all__ = ["MemoryStore", "make_event"]


def make_event(**fields: Any) -> dict[str, Any]:
    """A valid wire event; keyword arguments replace or add fields (`agent_id` -> `agent-id`)."""
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": "test/event",
        "system": "localhost",
        "agent-id": "test/agent",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    for name, value in fields.items():
        event[name.replace("_", "-")] = value
    return event


def _wire(event: bytes) -> dict[str, Any]:
    """A `_bulk` action and document from the C path, as the event's dict."""
    document: dict[str, Any] = orjson.loads(event.partition(b"\n")[2])
    document.pop("space", None)
    return document


class MemoryStore:
    """Keeps written events in memory, by space; set `unavailable` to make writes fail with 503
    and readiness report Elasticsearch as unreachable."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.unavailable = False

    async def ensure_templates(self) -> None:
        return None

    async def write(self, events: Sequence[Any], space: str) -> WriteOutcome:
        if not events:
            return WriteOutcome()
        self._check_available()
        # The C path gives `_bulk` lines; keep the wire form, as dicts.
        self.events.setdefault(space, []).extend(
            event if isinstance(event, dict) else _wire(event) for event in events
        )
        return WriteOutcome(created=len(events))

    def begin(self, events: Sequence[Any], space: str) -> None:
        return None  # every write is a coroutine here

    async def known_fields(self, space: str) -> set[str]:
        self._check_available()
        return set(fields_of(self.events.get(space, [])))

    async def readiness(self) -> dict[str, str]:
        if self.unavailable:
            return {"elasticsearch": "the memory store is set to be unavailable"}
        return {}

    def _check_available(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("The memory store is set to be unavailable.", {})

    async def close(self) -> None:
        return None
