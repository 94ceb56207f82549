"""The property budget: how many distinct properties (family and name) a space may create.

Elasticsearch fails a whole index once its mapping reaches its field limit, so a space that
keeps inventing property names would eventually break writes for itself. HQ refuses the
event that would create the property past the budget instead, naming it, before anything
reaches Elasticsearch. The known properties of each space are cached here and refreshed
from the store only when a batch brings a property the cache does not know.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from .errors import EventError, InvalidEvents
from .events import FAMILIES

__all__ = ["Batch", "FieldBudget", "fields_of"]

Location = tuple[int, Any]  # (position in the batch, event id)


class Batch(Protocol):
    """A decoded batch, as the budget sees it (see `decode.decode_batch`)."""

    events: list[Any]

    @property
    def fields(self) -> Collection[str]:
        """Every property field (`family.name`) the batch uses."""

    def first_uses(self, fields: Collection[str]) -> list[tuple[str, Location]]:
        """These fields, each with where it first appears, in the order they appear."""


def fields_of(events: Sequence[dict[str, Any]]) -> dict[str, Location]:
    """Every property field of a batch (`family.name`), with where it first appears."""
    fields: dict[str, Location] = {}
    seen: dict[str, set[str]] = {family: set() for family in FAMILIES}
    for index, event in enumerate(events):
        for family, names in seen.items():
            properties = event.get(family)
            # Batches repeat the same names; only a new one needs a key built.
            if properties and not names.issuperset(properties):
                for name in properties:
                    if name not in names:
                        names.add(name)
                        fields[f"{family}.{name}"] = (index, event.get("id"))
    return fields


class FieldBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: dict[str, set[str]] = {}

    async def check(
        self, space: str, batch: Batch, load: Callable[[str], Awaitable[set[str]]]
    ) -> None:
        """Raise `InvalidEvents` for the events whose new properties exceed the budget."""
        fields = batch.fields
        known = self._known.get(space)
        if known is not None and known.issuperset(fields):
            return
        known = self._known[space] = await load(space)
        new = [field for field in fields if field not in known]
        room = self.limit - len(known)
        if len(new) <= room:
            return
        errors = []
        for field, (index, event_id) in batch.first_uses(new)[max(room, 0) :]:
            errors.append(
                EventError(
                    index,
                    event_id,
                    f"$[{index}].{field}",
                    f"property '{field}' would be more than the {self.limit} distinct "
                    f"properties space '{space}' may have ({len(known)} exist)",
                )
            )
        raise InvalidEvents(errors, len(batch.events))

    def record(self, space: str, fields: Collection[str]) -> None:
        """After a write: its properties now exist."""
        known = self._known.get(space)
        if known is not None:
            known.update(fields)
