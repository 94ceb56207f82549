"""Retention: which event indices have left the kept window, and deleting them.

Event indices hold a month, a quarter or a year (`<prefix>-<space>-<period>`, see
`logspace.partitions`), so retention deletes whole periods and never part of one: an index goes
only once the last instant of its period is older than the window. With `--keep 90d` on
2026-11-26 the window starts on 2026-08-28; August 2026 (or the third quarter of 2026) ends
after that and stays, July 2026 and earlier go. Every form is read whatever the partition is
now, so the indices of a former partition age out too. Deciding is pure (`plan`); `apply` and
`run_periodically` hand the names to the store, which alone talks to Elasticsearch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from logspace.errors import StoreUnavailable
from logspace.partitions import Period, parse_period

if TYPE_CHECKING:
    from logspace.ops.metrics import Metrics

__all__ = [
    "EventIndex",
    "IndexStore",
    "Plan",
    "apply",
    "batches",
    "parse_index",
    "plan",
    "run_periodically",
]

log = logging.getLogger(__name__)

# Space names have no '-' (see settings), so the space is what lies between the prefix and
# the period, and another prefix's indices never parse as ours.
_SPACE_AND_PERIOD = re.compile(r"([a-z0-9][a-z0-9_]{0,63})-([0-9q.]+)")
# Index names go into the URL of one DELETE; stay well below Elasticsearch's 4 kB line limit.
MAX_URL_NAMES_CHARS = 3000


@dataclass(frozen=True)
class EventIndex:
    name: str
    space: str
    period: Period
    docs: int | None = None
    bytes: int | None = None

    @property
    def ends(self) -> datetime:
        """The first instant after the index's period (UTC)."""
        return self.period.ends


def parse_index(prefix: str, name: str) -> EventIndex | None:
    """The event index `name` of `prefix`, or None when it is not one."""
    if not name.startswith(f"{prefix}-"):
        return None
    match = _SPACE_AND_PERIOD.fullmatch(name[len(prefix) + 1 :])
    period = None if match is None else parse_period(match[2])
    if match is None or period is None:
        return None
    return EventIndex(name, match[1], period)


@dataclass(frozen=True)
class Plan:
    """Event indices to delete and to keep, each sorted by name."""

    cutoff: datetime
    expired: list[EventIndex]
    kept: list[EventIndex]


def plan(
    rows: Sequence[dict[str, Any]],
    prefix: str,
    keep_days: int,
    now: datetime,
    space: str | None = None,
) -> Plan:
    """Split `_cat/indices` rows into expired and kept event indices; other indices are left
    out. An index expires when its whole period lies before `now - keep_days`."""
    cutoff = now - timedelta(days=keep_days)
    expired: list[EventIndex] = []
    kept: list[EventIndex] = []
    for row in rows:
        parsed = parse_index(prefix, str(row.get("index", "")))
        if parsed is None or (space is not None and parsed.space != space):
            continue
        index = EventIndex(
            parsed.name,
            parsed.space,
            parsed.period,
            _number(row.get("docs.count")),
            _number(row.get("store.size")),
        )
        (expired if index.ends <= cutoff else kept).append(index)
    return Plan(
        cutoff,
        sorted(expired, key=lambda i: i.name),
        sorted(kept, key=lambda i: i.name),
    )


def _number(value: Any) -> int | None:
    # Closed indices report no counts.
    text = str(value) if isinstance(value, int | str) else ""
    return int(text) if text.isascii() and text.isdigit() else None


def batches(names: Sequence[str], max_chars: int = MAX_URL_NAMES_CHARS) -> Iterator[list[str]]:
    """`names` in groups whose comma-joined length stays within `max_chars`."""
    batch: list[str] = []
    size = 0
    for name in names:
        if batch and size + 1 + len(name) > max_chars:
            yield batch
            batch, size = [], 0
        size += len(name) + (1 if batch else 0)
        batch.append(name)
    if batch:
        yield batch


class IndexStore(Protocol):
    """What retention needs from the store (`logspace.store.Store` is one)."""

    async def indices(self, pattern: str) -> list[dict[str, Any]]: ...

    async def delete_indices(self, names: Sequence[str]) -> None: ...


async def apply(
    store: IndexStore,
    prefix: str,
    keep_days: int,
    *,
    space: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Plan:
    """Delete the expired event indices (unless `dry_run`); the plan says which they were."""
    pattern = f"{prefix}-{space}-*" if space else f"{prefix}-*"
    result = plan(await store.indices(pattern), prefix, keep_days, now or datetime.now(UTC), space)
    if not dry_run:
        for batch in batches([index.name for index in result.expired]):
            await store.delete_indices(batch)
    return result


async def run_periodically(
    store: IndexStore, prefix: str, keep_days: int, interval: float, metrics: Metrics
) -> None:
    """Apply retention now and every `interval` seconds, until cancelled; failures are logged
    and tried again at the next round."""
    while True:
        try:
            result = await apply(store, prefix, keep_days)
        except StoreUnavailable as error:
            metrics.es_errors.labels("retention", "unavailable").inc()
            log.warning("retention: %s", error.message)
        else:
            for index in result.expired:
                log.info("retention: deleted index %s (%s documents)", index.name, index.docs)
            metrics.deleted_indices.inc(len(result.expired))
        await asyncio.sleep(interval)
