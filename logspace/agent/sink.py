"""Sink: where agents put their events. Senders are sinks; `MemorySink` keeps events for tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .builder import Event, encode_event

__all__ = ["MemorySink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Takes one event; never blocks on the network (senders queue it)."""

    def send(self, event: Mapping[str, Any]) -> None: ...


class MemorySink:
    """Keeps events in a list after checking them like a sender would; for tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def send(self, event: Mapping[str, Any]) -> None:
        encode_event(event)
        with self._lock:
            self.events.append(dict(event))

    def of_type(self, type_: str) -> list[Event]:
        with self._lock:
            return [event for event in self.events if event.get("type") == type_]
