"""The event store: HQ's writes of events to Elasticsearch, and what operations need.

`Store.write` returns only once Elasticsearch has acknowledged every event of the batch
(created now, or already there from an earlier attempt). Events Elasticsearch cannot take
right now are re-sent, only those, with jittered exponential backoff until
`es_retry_seconds` have passed; then `StoreUnavailable` (503) tells the agent to send
the batch again later. Events Elasticsearch refuses for good raise `EventsNotStored`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic import allocation, bulk, shards, templates
from logspace.elastic.client import JSON, NDJSON, connect, describe, retryable
from logspace.elastic.controlstore import ControlStore
from logspace.elastic.readstore import ReadStore
from logspace.errors import EventsNotStored, StoreUnavailable
from logspace.settings import Settings

__all__ = ["EventStore", "Store"]

log = logging.getLogger(__name__)

# Elasticsearch indexes best with bulk requests of a few MB.
MAX_BULK_BYTES = 8 * 1024 * 1024
# Three cheap GETs; bounds how long a wiped cluster goes unnoticed between HQ's writes.
TEMPLATE_CHECK_SECONDS = 60.0
# Load balancers give up on a readiness probe within seconds; answer before they do.
READINESS_SECONDS = 3.0


class _Stuck(Exception):
    """A write waits on an index that has no primary shard and cannot get one."""


class EventStore(Protocol):
    """What HQ's endpoints need from a store; `logspace.testing.MemoryStore` is another one."""

    async def ensure_templates(self) -> None: ...

    async def write(self, events: list[Any] | bulk.Bulk, space: str) -> bulk.WriteOutcome: ...

    async def readiness(self) -> dict[str, str]: ...

    async def known_fields(self, space: str) -> set[str]: ...

    async def close(self) -> None: ...


class Store:
    def __init__(self, settings: Settings, client: AsyncElasticsearch | None = None) -> None:
        self._settings = settings
        self._client = client or connect(settings)
        self._full_timeout_client = self._client.options(request_timeout=settings.es_timeout)
        self._templates = templates.load(settings.index_prefix, replicas=settings.index_replicas)
        # When the templates were last found in place; None means "check before writing".
        self._templates_checked_at: float | None = None
        self._templates_lock = asyncio.Lock()
        # Whether this process has brought the event indices up to our mappings.
        self._indices_current = False

    async def close(self) -> None:
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

    async def install_templates(self) -> list[str]:
        """Install or update our index templates, then bring existing event indices of older
        mappings up to date; one report line per template and per index updated."""
        try:
            report = await templates.install(self._client, self._templates)
        except (ApiError, TransportError) as error:
            raise StoreUnavailable(
                f"Could not install the index templates: {describe(error)}.",
                {"reason": describe(error)},
                retry_after=self._retry_after,
            ) from error
        self._templates_checked_at = asyncio.get_running_loop().time()
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
        if not self._settings.install_templates or self._templates_fresh():
            return
        async with self._templates_lock:
            if not self._templates_fresh():
                for line in await self.install_templates():
                    if not line.endswith(": unchanged"):
                        log.info("%s", line)

    def _templates_fresh(self) -> bool:
        checked = self._templates_checked_at
        now = asyncio.get_running_loop().time()
        return checked is not None and now - checked < TEMPLATE_CHECK_SECONDS

    # -- events ------------------------------------------------------------------

    async def known_fields(self, space: str) -> set[str]:
        """The property fields (`family.name`) that exist in any index of the space."""
        try:
            response = await self._client.perform_request(
                "GET",
                f"/{self._settings.index_prefix}-{space}-*/_field_caps",
                params={"fields": "*-properties.*", "allow_no_indices": "true"},
                headers=JSON,
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

    async def write(self, events: list[Any] | bulk.Bulk, space: str) -> bulk.WriteOutcome:
        """Store every event, or raise `StoreUnavailable` / `EventsNotStored`.

        `events` are the thorough decoder's dicts, or the C path's `_bulk` lines already.
        A list is emptied once encoded: the objects take several times the bytes of the bulk
        body, and need not wait on Elasticsearch with it."""
        if not events:
            return bulk.WriteOutcome()
        await self.ensure_templates()
        if isinstance(events, bulk.Bulk):
            lines = events
        else:
            lines = bulk.encode(
                events, space, self._settings.index_prefix, self._settings.index_partition
            )
            events.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        # New attempts start only within the retry window; all of them end by the deadline, so
        # no request waits on Elasticsearch longer than `es_timeout`.
        retry_until = started + self._settings.es_retry_seconds
        deadline = started + self._settings.es_timeout
        pending = list(range(len(lines)))
        rejected: list[bulk.Rejection] = []
        duplicates: list[int] = []
        attempt = 0
        while pending:
            pending, reason, hopeless = await self._send(
                lines, pending, rejected, duplicates, deadline
            )
            if not pending:
                break
            if hopeless:
                # A block or an unallocatable index lasts longer than any retry window.
                log.warning("gave up on %d events at once: %s", len(pending), reason)
                raise self._unavailable(reason, len(pending))
            attempt += 1
            delay = random.uniform(0, min(2.0, 0.05 * 2**attempt))  # noqa: S311 - jitter
            if loop.time() + delay > retry_until:
                log.warning(
                    "gave up on %d events after %d attempts: %s", len(pending), attempt, reason
                )
                raise self._unavailable(reason, len(pending))
            await asyncio.sleep(delay)
        if rejected:
            raise _not_stored(rejected, lines)
        return bulk.WriteOutcome(len(lines) - len(duplicates), len(duplicates), attempt)

    async def _send(
        self,
        lines: bulk.Bulk,
        pending: list[int],
        rejected: list[bulk.Rejection],
        duplicates: list[int],
        deadline: float,
    ) -> tuple[list[int], str, bool]:
        """One pass over the pending events: those to send again, why, and whether sending
        them again at once is hopeless."""
        retry: list[int] = []
        reason = ""
        hopeless = False
        loop = asyncio.get_running_loop()
        if len(pending) == len(lines) and len(lines.body) <= MAX_BULK_BYTES:
            runs: Iterable[list[int]] = [pending]  # the usual case: all of it, in one request
        else:
            runs = bulk.chunks(lines, pending, MAX_BULK_BYTES)
        for run in runs:
            timeout = deadline - loop.time()
            if timeout <= 0:
                retry.extend(run)
                reason = reason or "Elasticsearch did not answer in time"
                continue
            if hopeless:
                retry.extend(run)
                continue
            try:
                response = await self._watched_bulk(lines, run, timeout)
            except _Stuck as stuck:
                retry.extend(run)
                reason, hopeless = str(stuck), True
                continue
            except (ApiError, TransportError) as error:
                reason = describe(error)
                self._noticed(error)
                if not retryable(error):
                    # e.g. refused credentials: an operator must act, so do not keep trying.
                    raise self._unavailable(reason, len(pending)) from error
                retry.extend(run)
                continue
            result = bulk.classify(response, run)
            retry.extend(result.retry)
            rejected.extend(result.rejected)
            duplicates.extend(result.duplicates)
            if result.retry:
                reason = f"Elasticsearch could not take some events now: {result.retry_reason}"
                hopeless |= result.blocked
        return retry, reason, hopeless

    async def _watched_bulk(
        self, lines: bulk.Bulk, run: list[int], seconds: float
    ) -> dict[str, Any]:
        """`_bulk`, but once it has taken as long as the retry window, ask Elasticsearch
        whether an index it writes to has no primary shard and cannot get one (a new
        monthly index on a disk past its watermark, say: Elasticsearch holds such a request
        for 30 s and more, then answers 503). If so, give up now, with Elasticsearch's
        explanation."""
        patience = self._settings.es_retry_seconds
        request = self._bulk(lines.join(run), seconds=seconds)
        if seconds <= patience:
            return await request
        task = asyncio.ensure_future(request)
        probe: asyncio.Future[str | None] | None = None
        try:
            done, _ = await asyncio.wait({task}, timeout=patience)
            if not done:
                # Side by side, so the write still ends by its deadline whatever the probe does.
                probe = asyncio.ensure_future(
                    allocation.unallocatable(self._client, lines.indices(run))
                )
                await asyncio.wait({task, probe}, return_when=asyncio.FIRST_COMPLETED)
                if probe.done() and probe.result():
                    raise _Stuck(probe.result())
            return await task
        finally:
            task.cancel()  # nothing, once they are done
            if probe is not None:
                probe.cancel()

    async def _bulk(self, body: bytes, *, seconds: float) -> dict[str, Any]:
        # `options()` builds a new client object; the first request of a write, which has
        # (within microseconds) the whole `es_timeout`, reuses one.
        if seconds >= self._settings.es_timeout - 0.001:
            client = self._full_timeout_client
        else:
            client = self._client.options(request_timeout=seconds)
        response = await client.perform_request(
            "POST",
            "/_bulk",
            params={"filter_path": bulk.RESPONSE_FILTER},
            headers=NDJSON,
            body=body,
        )
        result: dict[str, Any] = response.body
        return result

    def _noticed(self, error: Exception) -> None:
        """Elasticsearch was unreachable, and may come back empty: check the templates again
        before the next write."""
        if isinstance(error, TransportError):
            self._templates_checked_at = None

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
        return max(1, round(self._settings.es_retry_seconds))

    def _unavailable(self, reason: str, count: int) -> StoreUnavailable:
        return StoreUnavailable(
            f"{count} events could not be stored now: {reason}. "
            "Nothing is lost by sending the same batch again later.",
            {"reason": reason, "unstored-event-count": count},
            retry_after=self._retry_after,
        )


def _not_stored(rejected: list[bulk.Rejection], lines: bulk.Bulk) -> EventsNotStored:
    failures = [
        {
            "index": r.position,
            "id": lines.event_id(r.position),
            "status": r.status,
            "error": r.type,
            "reason": r.reason,
        }
        for r in rejected
    ]
    return EventsNotStored(
        f"Elasticsearch refused {len(failures)} of {len(lines)} events; the others are stored. "
        f"First: {failures[0]['error']}: {failures[0]['reason']}",
        {"errors": failures[:100], "error-count": len(failures)},
    )
