"""The property budget: how many distinct properties (family and name) a space may create.

Elasticsearch fails a whole index once its mapping reaches its field limit, so a space that
keeps inventing property names would eventually break writes for itself. HQ refuses the
event that would create the property past the budget instead, naming it, before anything
reaches Elasticsearch. The known properties of each space are cached here and refreshed
from the store only when a batch brings a property the cache does not know.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .errors import EventError, InvalidEvents
from .events import FAMILIES

__all__ = ["FieldBudget", "fields_of"]

Location = tuple[int, Any]  # (position in the batch, event id)


def fields_of(events: Sequence[dict[str, Any]]) -> dict[str, Location]:
    """Every property field of a batch (`family.name`), with where it first appears."""
    fields: dict[str, Location] = {}
    for index, event in enumerate(events):
        for family in FAMILIES:
            properties = event.get(family)
            if properties:
                for name in properties:
                    fields.setdefault(f"{family}.{name}", (index, event.get("id")))
    return fields


class FieldBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: dict[str, set[str]] = {}

    async def check(
        self,
        space: str,
        events: Sequence[dict[str, Any]],
        load: Callable[[str], Awaitable[set[str]]],
    ) -> None:
        """Raise `InvalidEvents` for the events whose new properties exceed the budget."""
        fields = fields_of(events)
        known = self._known.get(space)
        if known is not None and known.issuperset(fields):
            return
        known = self._known[space] = await load(space)
        new = [(field, where) for field, where in fields.items() if field not in known]
        room = self.limit - len(known)
        if len(new) <= room:
            return
        errors = [
            EventError(
                index,
                event_id,
                f"$[{index}].{field}",
                f"property '{field}' would be more than the {self.limit} distinct properties "
                f"space '{space}' may have ({len(known)} exist)",
            )
            for field, (index, event_id) in new[max(room, 0) :]
        ]
        raise InvalidEvents(errors, len(events))

    def record(self, space: str, events: Sequence[dict[str, Any]]) -> None:
        """After a write: its properties now exist."""
        known = self._known.get(space)
        if known is not None:
            known.update(fields_of(events))
