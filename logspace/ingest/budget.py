"""The property budget: how many distinct properties (family and name) a space may create.

Elasticsearch fails a whole index once its mapping reaches its field limit, so a space that
keeps inventing property names would eventually break writes for itself. HQ refuses the
events that would create properties past the budget instead, naming each, before anything
reaches Elasticsearch. The known properties of each space are cached here and refreshed
from the store only when a batch brings a property the cache does not know.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from logspace.elastic.bulk import Bulk
from logspace.errors import EventError, InvalidEvents
from logspace.events import FAMILIES, Unindexed, member_path

__all__ = ["Batch", "FieldBudget", "Use", "fields_of", "uses_in"]

Use = tuple[int, Any, str, str]  # (position in the batch, event id, family, property name)


class Batch(Protocol):
    """A decoded batch, as the budget sees it (see `ingest.decode.decode_batch`)."""

    # Dicts (the thorough decoder's), or already `_bulk` lines (the C path's).
    @property
    def events(self) -> list[Any] | Bulk: ...

    @property
    def fields(self) -> Collection[str]:
        """Every property field (`family.name`) the batch uses."""

    @property
    def unindexed(self) -> Unindexed:
        """The values Elasticsearch will store but not index (for the metrics)."""

    def uses(self, fields: Collection[str]) -> list[Use]:
        """Every use of these fields, in batch order (only error answers need it)."""


def fields_of(events: Sequence[dict[str, Any]]) -> set[str]:
    """Every property field (`family.name`) of events given as dicts."""
    return {
        f"{family}.{name}"
        for event in events
        for family in FAMILIES
        for name in event.get(family) or ()
    }


def uses_in(events: Sequence[dict[str, Any]], fields: Collection[str]) -> list[Use]:
    """`Batch.uses` for events given as dicts."""
    wanted = set(fields)
    return [
        (index, event.get("id"), family, name)
        for index, event in enumerate(events)
        for family in FAMILIES
        for name in event.get(family) or ()
        if f"{family}.{name}" in wanted
    ]


class FieldBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: dict[str, set[str]] = {}
        self._loading: dict[str, asyncio.Task[set[str]]] = {}

    def known(self, space: str, batch: Batch) -> Collection[str] | None:
        """What `check` finds when every property of the batch is known already (as most
        batches' are): none new; None when `check` must be asked."""
        fields = batch.fields
        known = self._known.get(space)
        if not fields or (known is not None and known.issuperset(fields)):
            return ()
        return None

    async def check(
        self, space: str, batch: Batch, load: Callable[[str], Awaitable[set[str]]]
    ) -> Collection[str]:
        """Raise `InvalidEvents` naming every event that brings a property past the budget;
        else the batch's properties the space did not have (for `record`)."""
        if self.known(space, batch) is not None:
            return ()
        fields = batch.fields
        known = await self._load(space, load)
        new = {field for field in fields if field not in known}
        room = self.limit - len(known)
        if len(new) <= room:
            return new
        uses = batch.uses(new)
        # New properties fit in the order they first appear; the rest are over the budget.
        in_order = list(dict.fromkeys(f"{family}.{name}" for _, _, family, name in uses))
        over = set(in_order[max(room, 0) :])
        message = (
            f"would be more than the {self.limit} distinct properties space '{space}' may "
            f"have ({len(known)} exist)"
        )
        errors = [
            EventError(
                index,
                event_id,
                member_path(f"$[{index}].{family}", name),
                f"property '{family}.{name}' {message}",
            )
            for index, event_id, family, name in uses
            if f"{family}.{name}" in over
        ]
        raise InvalidEvents(errors, len(batch.events))

    async def _load(self, space: str, load: Callable[[str], Awaitable[set[str]]]) -> set[str]:
        """The space's properties from the store, one load per space at a time: requests that
        miss the cache together share it (a fresh HQ under a fleet asked once per agent)."""
        task = self._loading.get(space)
        if task is None:
            task = self._loading[space] = asyncio.create_task(self._refresh(space, load))
            # Retrieved here too, so a load whose every waiter left logs no stray exception.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        # A waiter that leaves (its client went away) does not cancel the others' load.
        return await asyncio.shield(task)

    async def _refresh(self, space: str, load: Callable[[str], Awaitable[set[str]]]) -> set[str]:
        try:
            known = self._known[space] = await load(space)
            return known
        finally:
            del self._loading[space]

    def record(self, space: str, fields: Collection[str]) -> None:
        """After a write: these properties now exist (those `check` found new: most batches
        bring none)."""
        known = self._known.get(space)
        if fields and known is not None:
            known.update(fields)
