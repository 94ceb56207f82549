"""The write path: one batch's `_bulk` lines into Elasticsearch, through the coalescer.

`Writer.write` returns only once Elasticsearch has acknowledged every event of the batch
(created now, or already there from an earlier attempt). Events Elasticsearch cannot take
right now are sent again, only those, with jittered exponential backoff until
`es_retry_seconds` have passed; then `StoreUnavailable` (503) tells the agent to send the
batch again later. Events Elasticsearch refuses for good raise `EventsNotStored`. Each pass
goes through the `Coalescer`, so concurrent writes share bulk requests; each write keeps its
own deadline, retries and answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic import bulk
from logspace.elastic.client import JSON, NDJSON, describe, retryable
from logspace.elastic.coalescer import (
    BulkObserver,
    Closed,
    Coalescer,
    HeldUp,
    Send,
    Unallocatable,
)
from logspace.elastic.flushpolicy import FlushPolicy
from logspace.errors import EventsNotStored, StoreUnavailable
from logspace.settings import Settings

__all__ = ["Write", "Writer"]

log = logging.getLogger(__name__)

# Load balancers give up on a readiness probe within seconds; the allocation probe, run
# while a write waits, is held to the same.
PROBE_SECONDS = 3.0
# At most this many indices of a held bulk are asked about (one request each).
PROBED_INDICES = 3
_EXPLAIN_FILTER = (
    "current_state,can_allocate,allocate_explanation,"
    "node_allocation_decisions.deciders.decider,node_allocation_decisions.deciders.decision,"
    "node_allocation_decisions.deciders.explanation"
)


class Writer:
    def __init__(
        self,
        settings: Settings,
        client: AsyncElasticsearch,
        noticed: Callable[[Exception], None],
        observer: BulkObserver | None = None,
        send: Send | None = None,
    ) -> None:
        """`send` stands in for `_bulk` requests to Elasticsearch, for tests."""
        self._settings = settings
        self._client = client
        self._full_timeout_client = client.options(request_timeout=settings.es_timeout)
        self._noticed = noticed
        self.coalescer = Coalescer(
            send or self._watched_bulk,
            FlushPolicy(
                max_events=settings.bulk_max_events,
                max_bytes=settings.bulk_max_bytes,
                max_wait=settings.bulk_max_wait_seconds,
                concurrency=settings.bulk_concurrency,
            ),
            observer,
            # Long enough to outlast the retries of the writes held with it.
            isolation_seconds=2 * settings.es_retry_seconds,
        )

    async def close(self) -> None:
        await self.coalescer.close()

    async def write(self, lines: bulk.Bulk) -> bulk.WriteOutcome:
        """Store every event of `lines`, or raise `StoreUnavailable` / `EventsNotStored`."""
        write = self.begin(lines)
        if write.future is not None:
            try:  # noqa: SIM105 - not `suppress`: a context manager is a cost every write pays
                await write.future
            except Exception:  # noqa: S110 - judged by `rest`, as the first pass's answer
                pass
            outcome = write.settled()
            if outcome is not None:
                return outcome
        return await write.rest()

    def begin(self, lines: bulk.Bulk) -> Write:
        """`write` up to its first wait: the usual write (all of it as one contribution) is
        submitted now, and its `future` is the answer to that first go. `write` awaits it;
        a caller may instead add a done-callback, take the outcome from `settled`, and await
        `rest` only when the first go did not settle it."""
        started = self.coalescer.running_loop().time()
        # No request waits on Elasticsearch longer than `es_timeout`.
        write = Write(self, lines, started, started + self._settings.es_timeout)
        if lines.size <= self._settings.bulk_max_bytes:
            whole = range(len(lines))
            try:
                write.future = self.coalescer.contribute(
                    lines.body,
                    len(lines),
                    write.deadline,
                    lambda: lines.indices(whole),
                    lines.share,
                )
            except Exception as error:  # closed: judged by `rest`, as the first pass's answer
                write.first = error
        return write

    async def _passes(
        self, lines: bulk.Bulk, started: float, deadline: float, first: Any
    ) -> bulk.WriteOutcome:
        """Pass after pass over the events not stored yet; `first`, unless None, is the
        answer to a first pass that contributed all of them."""
        loop = self.coalescer.running_loop()
        # New attempts start only within the retry window; all of them end by the deadline.
        retry_until = started + self._settings.es_retry_seconds
        pending = list(range(len(lines)))
        rejected: list[bulk.Rejection] = []
        duplicates: list[int] = []
        attempt = 0
        while pending:
            if first is not None:
                runs, answers, first = [pending], [first], None
            else:
                runs, answers = await self._pass(lines, pending, deadline)
            pending, reason, hopeless = self._judge(runs, answers, rejected, duplicates)
            if not pending:
                break
            if hopeless:
                # A block or an unallocatable index lasts longer than any retry window.
                log.warning("gave up on %d events at once: %s", len(pending), reason)
                raise self._unavailable(reason, len(pending))
            lines.unshare()
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

    async def _pass(
        self, lines: bulk.Bulk, pending: list[int], deadline: float
    ) -> tuple[list[list[int]], list[Any]]:
        """One pass over the pending events: their runs (one contribution each), and each
        run's answer or error."""
        if len(pending) == len(lines) and lines.size <= self._settings.bulk_max_bytes:
            runs = [pending]  # all of it, as one contribution
        else:
            runs = list(bulk.chunks(lines, pending, self._settings.bulk_max_bytes))
        if len(runs) == 1:  # without gather's task per run: most passes are one small run
            try:
                answers: list[Any] = [await self._contribute(lines, runs[0], deadline)]
            except Exception as error:
                answers = [error]
        else:
            answers = await asyncio.gather(
                *(self._contribute(lines, run, deadline) for run in runs), return_exceptions=True
            )
        return runs, answers

    def _judge(
        self,
        runs: list[list[int]],
        answers: list[Any],
        rejected: list[bulk.Rejection],
        duplicates: list[int],
    ) -> tuple[list[int], str, bool]:
        """The events to send again, why, and whether sending them again at once is
        hopeless; adds to `rejected` and `duplicates`."""
        retry: list[int] = []
        reason = ""
        hopeless = False
        count = sum(len(run) for run in runs)
        for run, answer in zip(runs, answers, strict=True):
            if isinstance(answer, dict):
                result = bulk.classify(answer, run)
                retry.extend(result.retry)
                rejected.extend(result.rejected)
                duplicates.extend(result.duplicates)
                if result.retry:
                    reason = f"Elasticsearch could not take some events now: {result.retry_reason}"
                    hopeless |= result.blocked
                continue
            retry.extend(run)
            if isinstance(answer, TimeoutError):
                reason = reason or "Elasticsearch did not answer in time"
            elif isinstance(answer, Unallocatable):
                reason, hopeless = str(answer), True
            elif isinstance(answer, Closed):
                raise self._unavailable("HQ is shutting down", count)
            elif isinstance(answer, ApiError | TransportError):
                reason = describe(answer)
                self._noticed(answer)
                if not retryable(answer):
                    # e.g. refused credentials: an operator must act, so do not keep trying.
                    raise self._unavailable(reason, count) from answer
            else:
                raise answer
        return retry, reason, hopeless

    async def _contribute(self, lines: bulk.Bulk, run: list[int], deadline: float) -> Any:
        # All of its lines: a shared bulk's body may stand in for them (no second copy, so
        # no reference to the lines is kept here while the bulk is in flight).
        share = lines.share if len(run) == len(lines) else None
        while True:
            if deadline <= self.coalescer.running_loop().time():
                raise TimeoutError()
            try:
                return await self.coalescer.submit(
                    lines.join(run), len(run), deadline, lambda: lines.indices(run), share
                )
            except HeldUp:
                # Another request's index held the bulk: not this request's problem, so it
                # does not count as an attempt and goes again at once (within its deadline).
                continue

    # -- one bulk request --------------------------------------------------------

    async def _watched_bulk(
        self, body: bytes, deadline: float, indices: Callable[[], list[str]]
    ) -> dict[str, Any]:
        """`_bulk`, but once it has taken as long as the retry window, ask Elasticsearch
        whether an index it writes to has no primary shard and cannot get one (a new
        monthly index on a disk past its watermark, say: Elasticsearch holds such a request
        for 30 s and more, then answers 503). If so, give up now, with Elasticsearch's
        explanation (`Unallocatable`)."""
        patience = self._settings.es_retry_seconds
        seconds = deadline - self.coalescer.running_loop().time()
        request = self._bulk(body, seconds=seconds)
        if seconds <= patience:
            return await request
        task = asyncio.ensure_future(request)
        probe: asyncio.Future[dict[str, str]] | None = None
        try:
            done, _ = await asyncio.wait({task}, timeout=patience)
            if not done:
                # Side by side, so the write still ends by its deadline whatever the probe does.
                probe = asyncio.ensure_future(self._unallocatable(indices()))
                await asyncio.wait({task, probe}, return_when=asyncio.FIRST_COMPLETED)
                if probe.done() and probe.result():
                    raise Unallocatable(probe.result())
            return await task
        finally:
            task.cancel()  # nothing, once they are done
            if probe is not None:
                probe.cancel()

    async def _unallocatable(self, indices: Sequence[str]) -> dict[str, str]:
        """Of `indices`, those whose primary shard cannot be allocated, and why. Needs the
        cluster `monitor` privilege; without it, or for an index not created yet, there is
        nothing to tell. A bulk of many spaces asks first which of its indices are red."""
        if len(indices) > PROBED_INDICES:
            red = await self._red_indices()
            if red is not None:
                indices = [index for index in indices if index in red]
        found = {}
        for index in indices[:PROBED_INDICES]:
            reason = await self._explain(index)
            if reason:
                found[index] = reason
        return found

    async def _red_indices(self) -> set[str] | None:
        try:
            response = await self._client.options(request_timeout=PROBE_SECONDS).perform_request(
                "GET",
                f"/_cat/indices/{self._settings.index_prefix}-*",
                params={"health": "red", "h": "index", "format": "json"},
                headers=JSON,
            )
        except (ApiError, TransportError):
            return None
        return {str(row.get("index")) for row in response.body}

    async def _explain(self, index: str) -> str | None:
        try:
            response = await self._client.options(request_timeout=PROBE_SECONDS).perform_request(
                "POST",
                "/_cluster/allocation/explain",
                params={"filter_path": _EXPLAIN_FILTER},
                headers=JSON,
                body={"index": index, "shard": 0, "primary": True},
            )
        except (ApiError, TransportError):
            return None
        explained = response.body
        if explained.get("current_state") != "unassigned" or explained.get("can_allocate") != "no":
            return None
        refusals = [
            f"{decider.get('decider')}: {decider.get('explanation')}"
            for node in explained.get("node_allocation_decisions", [])
            for decider in node.get("deciders", [])
            if decider.get("decision") == "NO"
        ]
        detail = refusals[0] if refusals else explained.get("allocate_explanation", "")
        return f"index {index} has no primary shard and Elasticsearch cannot allocate one: {detail}"

    async def _bulk(self, body: bytes, *, seconds: float) -> dict[str, Any]:
        # `options()` builds a new client object (about 0.2 ms). A bulk with (nearly) the whole
        # `es_timeout` left reuses one: its writers stop waiting at their own deadlines anyway.
        timeout = self._settings.es_timeout
        if seconds >= timeout - min(1.0, timeout / 10):
            client = self._full_timeout_client
        else:
            client = self._client.options(request_timeout=max(seconds, 0.001))
        response = await client.perform_request(
            "POST",
            "/_bulk",
            params={"filter_path": bulk.RESPONSE_FILTER},
            headers=NDJSON,
            body=body,
        )
        result: dict[str, Any] = response.body
        return result

    # -- answers -----------------------------------------------------------------

    @property
    def retry_after(self) -> int:
        return max(1, round(self._settings.es_retry_seconds))

    def _unavailable(self, reason: str, count: int) -> StoreUnavailable:
        return StoreUnavailable(
            f"{count} events could not be stored now: {reason}. "
            "Nothing is lost by sending the same batch again later.",
            {"reason": reason, "unstored-event-count": count},
            retry_after=self.retry_after,
        )


class Write:
    """One batch's write, begun (`Writer.begin`)."""

    __slots__ = ("_writer", "deadline", "first", "future", "lines", "started")

    def __init__(self, writer: Writer, lines: bulk.Bulk, started: float, deadline: float) -> None:
        self._writer = writer
        self.lines = lines
        self.started = started
        self.deadline = deadline
        # The answer to the usual write's first go, once done; None: no first go was made.
        self.future: asyncio.Future[dict[str, Any]] | None = None
        # The first go's answer when it failed at once (None: there is none yet).
        self.first: Any = None

    def settled(self) -> bulk.WriteOutcome | None:
        """The outcome, when the first go (done) stored every event; else None, and `rest`
        decides. Only that is settled here, so both ways of writing answer alike."""
        future = self.future
        if future is None or future.cancelled() or future.exception() is not None:
            return None
        if future.result().get("errors"):
            return None
        return bulk.WriteOutcome(len(self.lines))

    async def rest(self) -> bulk.WriteOutcome:
        """The outcome after a first go that did not settle it (or no first go): pass after
        pass over the events not stored yet, the first go's answer judged as the first's."""
        first = self.first
        future = self.future
        if future is not None:
            error = future.exception()  # raises CancelledError if it was cancelled
            if error is None:
                first = future.result()
            elif isinstance(error, HeldUp):
                first = None  # not this write's problem: a pass of its own, at once
            elif isinstance(error, Exception):
                first = error
            else:  # cancelled, say, with the bulk: as the write itself would be
                raise error
        return await self._writer._passes(self.lines, self.started, self.deadline, first)


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
