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
from .events import FAMILIES, member_path

__all__ = ["FieldBudget", "fields_of"]


def fields_of(events: Sequence[dict[str, Any]]) -> dict[str, None]:
    """Every property field of a batch (`family.name`), in order of first appearance."""
    fields: dict[str, None] = {}
    for event in events:
        for family in FAMILIES:
            properties = event.get(family)
            if properties:
                for name in properties:
                    fields[f"{family}.{name}"] = None
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
        """Raise `InvalidEvents` naming every event that brings a property past the budget."""
        fields = fields_of(events)
        known = self._known.get(space)
        if not fields or (known is not None and known.issuperset(fields)):
            return
        known = self._known[space] = await load(space)
        new = [field for field in fields if field not in known]
        room = self.limit - len(known)
        if len(new) <= room:
            return
        over = set(new[max(room, 0) :])
        message = (
            f"would be more than the {self.limit} distinct properties space '{space}' may "
            f"have ({len(known)} exist)"
        )
        errors = [
            EventError(
                index,
                event.get("id"),
                member_path(f"$[{index}].{family}", name),
                f"property '{family}.{name}' {message}",
            )
            for index, event in enumerate(events)
            for family in FAMILIES
            for name in event.get(family) or ()
            if f"{family}.{name}" in over
        ]
        raise InvalidEvents(errors, len(events))

    def record(self, space: str, events: Sequence[dict[str, Any]]) -> None:
        """After a write: its properties now exist."""
        known = self._known.get(space)
        if known is not None:
            known.update(fields_of(events))
