"""The event store: HQ's writes of events to Elasticsearch, and what operations need.

`Store.write` returns only once Elasticsearch has acknowledged every event of the batch; the
`Writer` (writer.py) sends the events, through the coalescer that lets concurrent writes
share bulk requests, and retries what Elasticsearch could not take now.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic import bulk, shards, templates
from logspace.elastic.client import JSON, connect, describe, retryable
from logspace.elastic.coalescer import BulkObserver
from logspace.elastic.controlstore import ControlStore
from logspace.elastic.readstore import ReadStore
from logspace.elastic.writer import Write, Writer
from logspace.errors import StoreUnavailable
from logspace.settings import Settings

T = TypeVar("T")

__all__ = ["EventStore", "Store"]

log = logging.getLogger(__name__)

# Three cheap GETs; bounds how long a wiped cluster goes unnoticed between HQ's writes.
TEMPLATE_CHECK_SECONDS = 60.0
# Load balancers give up on a readiness probe within seconds; answer before they do.
READINESS_SECONDS = 3.0


class EventStore(Protocol):
    """What HQ's endpoints need from a store; `logspace.testing.MemoryStore` is another one."""

    async def ensure_templates(self) -> None: ...

    def write(self, events: list[Any] | bulk.Bulk, space: str) -> Awaitable[bulk.WriteOutcome]: ...

    def begin(self, events: list[Any] | bulk.Bulk, space: str) -> Write | None:
        """`write` begun without a coroutine, when it is the usual write; None otherwise:
        nothing is sent (a list of events may be spent), write the batch anew. A store may
        always answer None."""

    async def readiness(self) -> dict[str, str]: ...

    async def known_fields(self, space: str) -> set[str]: ...

    async def close(self) -> None: ...


class Store:
    def __init__(
        self,
        settings: Settings,
        client: AsyncElasticsearch | None = None,
        observer: BulkObserver | None = None,
    ) -> None:
        """`observer` hears of every bulk request sent (the metrics)."""
        self._settings = settings
        self._client = client or connect(settings)
        self._writer = Writer(settings, self._client, self._noticed, observer)
        self._templates = templates.load(settings.index_prefix, replicas=settings.index_replicas)
        # When the templates were last found in place; None means "check before writing".
        self._templates_checked_at: float | None = None
        self._templates_lock = asyncio.Lock()
        # Whether this process has brought the event indices up to our mappings.
        self._indices_current = False

    async def close(self) -> None:
        """Send what waits for a bulk, wait for the answers, then close the connections."""
        await self._writer.close()
        await self._client.close()

    def reader(self, failed: Callable[[str], None] | None = None) -> ReadStore:
        """The read side of this store, on the same client; `failed` hears of its failures."""
        return ReadStore(self._client, self._settings.index_prefix, self._retry_after, failed)

    def control(self) -> ControlStore:
        """The control side of this store (capabilities of agent controllers), same client."""
        return ControlStore(
            self._client,
            self._settings.control_index,
            self._retry_after,
            replicas=templates.replica_settings(self._settings.index_replicas),
        )

    # -- templates ---------------------------------------------------------------

    async def install_templates(self, *, retry: bool = False) -> list[str]:
        """Install or update our index templates, then bring existing event indices of older
        mappings up to date; one report line per template and per index updated. With `retry`,
        an unreachable or overloaded Elasticsearch is asked again within `es_retry_seconds`,
        as a write is."""
        install = functools.partial(templates.install, self._client, self._templates)
        try:
            report = await (self._retried(install) if retry else install())
        except (ApiError, TransportError) as error:
            raise StoreUnavailable(
                f"Could not install the index templates: {describe(error)}.",
                {"reason": describe(error)},
                retry_after=self._retry_after,
            ) from error
        self._templates_checked_at = time.monotonic()
        if not self._indices_current or any(not r.endswith(": unchanged") for r in report):
            report.extend(
                await templates.upgrade_indices(
                    self._client, self._settings.index_prefix, self._templates
                )
            )
            self._indices_current = True
        return report

    async def ensure_templates(self) -> None:
        """An event index must never be created without its template: before writing, make
        sure they are in place, at start, after Elasticsearch was unreachable (it may have come
        back empty) and every `TEMPLATE_CHECK_SECONDS`."""
        if self._templates_due():
            await self._install_due_templates(retry=False)

    def _templates_due(self) -> bool:
        return self._settings.install_templates and not self._templates_fresh()

    async def _install_due_templates(self, *, retry: bool) -> None:
        async with self._templates_lock:
            if not self._templates_fresh():
                for line in await self.install_templates(retry=retry):
                    if not line.endswith(": unchanged"):
                        log.info("%s", line)

    def _templates_fresh(self) -> bool:
        checked = self._templates_checked_at
        return checked is not None and time.monotonic() - checked < TEMPLATE_CHECK_SECONDS

    # -- events ------------------------------------------------------------------

    async def known_fields(self, space: str) -> set[str]:
        """The property fields (`family.name`) that exist in any index of the space.

        Retried like a write within `es_retry_seconds`: an index being created (the first
        write of a month) answers with shards not yet ready, which is no reason for a 503."""
        try:
            response = await self._retried(
                functools.partial(
                    self._client.perform_request,
                    "GET",
                    f"/{self._settings.index_prefix}-{space}-*/_field_caps",
                    params={"fields": "*-properties.*", "allow_no_indices": "true"},
                    headers=JSON,
                )
            )
        except (ApiError, TransportError) as error:
            self._noticed(error)
            raise StoreUnavailable(
                f"Could not read the properties of space '{space}': {describe(error)}.",
                {"reason": describe(error)},
                retry_after=self._retry_after,
            ) from error
        return {
            name
            for name, types in response.body.get("fields", {}).items()
            if name.partition(".")[2] and "object" not in types
        }

    def write(self, events: list[Any] | bulk.Bulk, space: str) -> Awaitable[bulk.WriteOutcome]:
        """Store every event, or raise `StoreUnavailable` / `EventsNotStored` (see `Writer`).

        `events` are the thorough decoder's dicts, or the C path's `_bulk` lines already.
        A list is emptied once encoded: the objects take several times the bytes of the bulk
        body, and need not wait on Elasticsearch with it. The usual write is the writer's
        coroutine itself, without one of this method's around it."""
        if not events or self._templates_due():
            return self._write_after_templates(events, space)
        return self._writer.write(self._lines(events, space))

    def begin(self, events: list[Any] | bulk.Bulk, space: str) -> Write | None:
        """The usual write begun (`Writer.begin`) when its first go can be made now (the
        events' lines fit one contribution, the templates are not due): a fleet's small
        request then waits on a future rather than on a coroutine. None: nothing sent, but
        a list of events is spent once encoded, as by `write`."""
        if not events or self._templates_due():
            return None
        write = self._writer.begin(self._lines(events, space))
        return write if write.future is not None else None

    async def _write_after_templates(
        self, events: list[Any] | bulk.Bulk, space: str
    ) -> bulk.WriteOutcome:
        if not events:
            return bulk.WriteOutcome()
        if self._templates_due():  # as `ensure_templates`, without a coroutine per write
            # Retried as the write itself is: the first write after Elasticsearch was
            # unreachable checks the templates, and one node still down must not fail it.
            await self._install_due_templates(retry=True)
        return await self._writer.write(self._lines(events, space))

    def _lines(self, events: list[Any] | bulk.Bulk, space: str) -> bulk.Bulk:
        if isinstance(events, bulk.Bulk):
            return events
        lines = bulk.encode(
            events, space, self._settings.index_prefix, self._settings.index_partition
        )
        events.clear()
        return lines

    def _noticed(self, error: Exception) -> None:
        """Elasticsearch was unreachable, and may come back empty: check the templates again
        before the next write."""
        if isinstance(error, TransportError):
            self._templates_checked_at = None

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, made again after a 429, a 5xx or no answer for as long as a write would
        be (`es_retry_seconds`); the last error once that is over, or any other at once."""
        loop = asyncio.get_running_loop()
        retry_until = loop.time() + self._settings.es_retry_seconds
        attempt = 0
        while True:
            try:
                return await call()
            except (ApiError, TransportError) as error:
                attempt += 1
                delay = random.uniform(0, min(1.0, 0.05 * 2**attempt))  # noqa: S311 - jitter
                if not retryable(error) or loop.time() + delay > retry_until:
                    raise
                await asyncio.sleep(delay)

    # -- operations --------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        """What keeps HQ from taking events, by check (`elasticsearch`, `templates`); empty
        when Elasticsearch answers and every index template is in place."""
        try:
            async with asyncio.timeout(READINESS_SECONDS):
                installed = [
                    await templates.installed_version(self._client, t) for t in self._templates
                ]
        except TimeoutError:
            return {"elasticsearch": f"no answer within {READINESS_SECONDS:g} seconds"}
        except (ApiError, TransportError) as error:
            return {"elasticsearch": describe(error)}
        problems = templates.outdated(self._templates, installed)
        return {"templates": "; ".join(problems)} if problems else {}

    async def shard_use(self) -> shards.ShardUse:
        """The cluster's shards against its limit (see `shards`)."""
        return await shards.read_shard_use(self._client, self._retry_after)

    async def indices(self, pattern: str) -> list[dict[str, Any]]:
        """The indices matching `pattern`, open or closed: `index`, `docs.count`, `store.size`."""
        try:
            response = await self._client.perform_request(
                "GET",
                f"/_cat/indices/{pattern}",
                params={
                    "format": "json",
                    "h": "index,docs.count,store.size",
                    "bytes": "b",
                    "expand_wildcards": "open,closed",
                },
                headers=JSON,
            )
        except (ApiError, TransportError) as error:
            raise self._operation_failed("list the event indices", error) from error
        return list(response.body)

    async def delete_indices(self, names: Sequence[str]) -> None:
        """Delete exactly these indices; full names, since clusters may refuse wildcards
        (`action.destructive_requires_name`). One already gone is no error."""
        if not names:
            return
        try:
            await self._client.perform_request(
                "DELETE",
                "/" + ",".join(names),
                params={"ignore_unavailable": "true"},
                headers=JSON,
            )
        except (ApiError, TransportError) as error:
            raise self._operation_failed("delete indices", error) from error

    def _operation_failed(self, what: str, error: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"Could not {what}: {describe(error)}.",
            {"reason": describe(error)},
            retry_after=self._retry_after,
        )

    @property
    def _retry_after(self) -> int:
        return self._writer.retry_after
