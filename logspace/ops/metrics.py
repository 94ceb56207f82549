"""Prometheus metrics: what HQ took in, what became of it, how long storing took; what the
read API answered and how long that took.

Every metric lives in the `Metrics` of one app, so tests and several apps in one process do
not share counters. With several worker processes each worker counts for itself; when
`PROMETHEUS_MULTIPROC_DIR` names a directory (`logspace serve --workers N` sets one up),
prometheus_client keeps the values in files there and `/metrics` answers with the sum over
all workers, whichever worker a scrape reaches.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from logspace.elastic.bulk import WriteOutcome
from logspace.elastic.flushpolicy import REASONS
from logspace.errors import (
    CLIENT_CLOSED_TYPE,
    EventsNotStored,
    InvalidEvents,
    LogspaceError,
    MetricsTokenRequired,
    StoreUnavailable,
)
from logspace.events import Unindexed
from logspace.ops.connections import Connections
from logspace.ops.deferredflush import DeferredFlush
from logspace.ops.tally import Tally
from logspace.spaces.grants import token_digest

__all__ = ["MULTIPROCESS_VARIABLE", "Ingest", "Metrics", "Read", "get_metrics"]

MULTIPROCESS_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"

# Storing a batch takes milliseconds when Elasticsearch keeps up, and up to
# LOGSPACE_ES_RETRY_SECONDS (plus a request timeout) when it does not.
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Events and bytes per bulk request: from one small request alone to LOGSPACE_BULK_MAX_*.
_BULK_EVENT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_BULK_BYTE_BUCKETS = tuple(1024 * 4**n for n in range(9))  # 1 KiB .. 64 MiB
# A request waits for its bulk from nothing (idle HQ) to LOGSPACE_BULK_MAX_WAIT_SECONDS, or
# longer while every bulk slot is taken.
_BULK_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# A read takes one or a few searches: milliseconds, up to LOGSPACE_ES_TIMEOUT each.
_READ_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Errors that leave events unstored: the reason label, and the parameter counting those
# events (all events of the batch when it is absent).
_REJECTED: Final[dict[type[Exception], tuple[str, str]]] = {
    # Nothing of an invalid batch is stored, its valid events included.
    InvalidEvents: ("invalid", "event-count"),
    EventsNotStored: ("refused", "error-count"),
    StoreUnavailable: ("unavailable", "unstored-event-count"),
}


class Metrics:
    """The metrics of one HQ app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "logspace_requests",
            "Requests to PUT /events, by space (empty when the token was missing or unknown) "
            "and outcome (`accepted` or the error type in lower case).",
            ["space", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "logspace_events",
            "Events of decoded batches, by space and outcome: accepted (stored now), duplicate "
            "(already stored), rejected (with a reason: invalid, refused, unavailable).",
            ["space", "outcome", "reason"],
            registry=self.registry,
        )
        self.unindexed = Counter(
            "logspace_unindexed_values",
            "Property values of stored batches that Elasticsearch keeps in _source but does "
            "not index, by space and reason: non-finite (NaN, Infinity, -Infinity, or a "
            "float property beyond float32), long-string (over 8191 characters).",
            ["space", "reason"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "logspace_bulk_write_seconds",
            "Time to store one batch in Elasticsearch, retries included.",
            buckets=_WRITE_BUCKETS,
            registry=self.registry,
        )
        self.requests_in_flight = Gauge(
            "logspace_requests_in_flight",
            "Requests to PUT /events being handled now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.events_in_flight = Gauge(
            "logspace_events_in_flight",
            "Events being written to Elasticsearch now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.es_errors = Counter(
            "logspace_elasticsearch_errors",
            "Problems with Elasticsearch, by operation (write, read, readiness, retention) and "
            "reason (retried: a write pass had to re-send events; unavailable; refused).",
            ["operation", "reason"],
            registry=self.registry,
        )
        self.reads = Counter(
            "logspace_read_requests",
            "Requests to the read API, by endpoint (search, export, time-series, suggestions, "
            "agent-activity), space (empty when the token was missing or unknown) and outcome "
            "(`ok` or the error type in lower case).",
            ["endpoint", "space", "outcome"],
            registry=self.registry,
        )
        self.read_seconds = Histogram(
            "logspace_read_seconds",
            "Time to answer a read request, by endpoint; for an export, until its first page.",
            ["endpoint"],
            buckets=_READ_BUCKETS,
            registry=self.registry,
        )
        self.bulk_events = Histogram(
            "logspace_bulk_request_events",
            "Events per bulk request sent to Elasticsearch (concurrent requests share them).",
            buckets=_BULK_EVENT_BUCKETS,
            registry=self.registry,
        )
        self.bulk_bytes = Histogram(
            "logspace_bulk_request_bytes",
            "Bytes of `_bulk` lines per bulk request sent to Elasticsearch.",
            buckets=_BULK_BYTE_BUCKETS,
            registry=self.registry,
        )
        self.bulk_wait_seconds = Histogram(
            "logspace_bulk_wait_seconds",
            "Time a request's events waited for a bulk request to carry them (each attempt).",
            buckets=_BULK_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.bulk_flushes = Counter(
            "logspace_bulk_flushes",
            "Bulk requests sent, by why they went: idle (none was in flight), events or bytes "
            "(full), time (waited LOGSPACE_BULK_MAX_WAIT_SECONDS), shutdown, alone (a request "
            "sent by itself: to an index that holds bulks, or after a shared bulk failed).",
            ["reason"],
            registry=self.registry,
        )
        for reason in REASONS:
            self.bulk_flushes.labels(reason)  # every reason shows, at 0 until it happens
        # Every worker reads the same cluster: the highest figure of the live ones.
        self.cluster_shards = Gauge(
            "logspace_elasticsearch_shards",
            "Shard copies in the Elasticsearch cluster (active, initializing, unassigned), "
            "as HQ last read them (every minute).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.cluster_shard_limit = Gauge(
            "logspace_elasticsearch_shard_limit",
            "The most shards the cluster may hold: cluster.max_shards_per_node times the "
            "data nodes, as HQ last read them.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._stored: dict[str, _Stored] = {}
        # The ingest path's counts, in plain numbers until `flush` (see `tally.Tally`); `Ingest`
        # moves them, then calls `counted`.
        self.tally = Tally(write_buckets=_WRITE_BUCKETS, wait_buckets=_BULK_WAIT_BUCKETS)
        # The tally changed: shown once this event-loop turn's work is done.
        self.counted = DeferredFlush(self.flush).request
        self.deleted_indices = Counter(
            "logspace_retention_deleted_indices",
            "Event indices deleted by the retention that runs inside HQ.",
            registry=self.registry,
        )
        self.connections = Connections(self.registry)

    def ingest(self) -> Ingest:
        """Measure one PUT /events (`with metrics.ingest() as ingest:`): its outcome, by error
        type if it raises one."""
        return Ingest(self)

    @contextmanager
    def read(self, endpoint: str) -> Iterator[Read]:
        """Measure one request to a read endpoint: its outcome, by error type if it raises."""
        read = Read()
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield read
        except Exception as error:
            outcome = _outcome_of(error)
            raise
        finally:
            self.reads.labels(endpoint, read.space, outcome).inc()
            self.read_seconds.labels(endpoint).observe(time.perf_counter() - started)

    def stored_counters(self, space: str) -> _Stored:
        """The counters every stored batch of `space` moves, found once per space:
        `labels()` checks its arguments each time, which a fleet's many small requests feel."""
        counters = self._stored.get(space)
        if counters is None:
            counters = self._stored[space] = _Stored(
                self.requests.labels(space, "accepted"),
                self.events.labels(space, "accepted", ""),
                self.events.labels(space, "duplicate", ""),
            )
        return counters

    def flush(self) -> None:
        """Hand what the ingest path counted since the last flush to the Prometheus metrics."""
        tally = self.tally
        if tally.requests_in_flight != tally.requests_in_flight_shown:
            self.requests_in_flight.set(tally.requests_in_flight)
            tally.requests_in_flight_shown = tally.requests_in_flight
        if tally.events_in_flight != tally.events_in_flight_shown:
            self.events_in_flight.set(tally.events_in_flight)
            tally.events_in_flight_shown = tally.events_in_flight
        tally.write_seconds.fold_into(self.write_seconds)
        tally.bulk_wait_seconds.fold_into(self.bulk_wait_seconds)
        stored, tally.stored = tally.stored, {}
        for space, (requests, events) in stored.items():
            counters = self.stored_counters(space)
            if requests:
                counters.requests.inc(requests)
            if events:
                counters.accepted.inc(events)

    def bulk_sent(self, reason: str, events: int, size: int) -> None:
        """The coalescer sent a bulk request (`coalescer.BulkObserver`)."""
        self.bulk_flushes.labels(reason).inc()
        self.bulk_events.observe(events)
        self.bulk_bytes.observe(size)

    def bulk_waited(self, seconds: float) -> None:
        self.tally.bulk_wait_seconds.add(seconds)
        self.counted()

    def read_failed(self, reason: str) -> None:
        """Elasticsearch failed a read: `unavailable` (unreachable, 429, 5xx) or `refused`."""
        self.es_errors.labels("read", reason).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, summed over all workers in multiprocess mode."""
        self.flush()
        if os.environ.get(MULTIPROCESS_VARIABLE):
            registry = CollectorRegistry()
            # prometheus_client leaves this constructor unannotated.
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class _Stored(NamedTuple):
    requests: Counter
    accepted: Counter
    duplicate: Counter


class Read:
    """One read request being measured; the route names its space once the token is known."""

    def __init__(self) -> None:
        self.space = ""


class Ingest:
    """One PUT /events being measured; the route tells it what it learns on the way."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.space = ""
        self._events = 0
        self._created = 0  # of the batch, once stored: counted with the request at the end
        self._started: float | None = None

    # A class of its own rather than `@contextmanager`: a generator per request is a cost
    # a fleet's many small requests feel.
    def __enter__(self) -> Ingest:
        self._metrics.tally.requests_in_flight += 1
        self._metrics.counted()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any
    ) -> None:
        try:
            if isinstance(error, Exception):
                self.failed(error)
        finally:
            self.finish()
            self._metrics.tally.requests_in_flight -= 1
            self._metrics.counted()
        if error is None:
            self._metrics.tally.stored_in(self.space, 1, self._created)
        elif self._created:  # stored, though the request failed after that
            self._metrics.tally.stored_in(self.space, 0, self._created)

    def writing(self, events: int) -> None:
        """The batch is decoded and goes to the store now."""
        self._events = events
        self._started = time.perf_counter()
        self._metrics.tally.events_in_flight += events
        self._metrics.counted()

    def stored(self, outcome: WriteOutcome, unindexed: Unindexed) -> None:
        self._created = outcome.created
        if outcome.duplicate:
            self._metrics.stored_counters(self.space).duplicate.inc(outcome.duplicate)
        if unindexed.non_finite:
            self._metrics.unindexed.labels(self.space, "non-finite").inc(unindexed.non_finite)
        if unindexed.long_strings:
            self._metrics.unindexed.labels(self.space, "long-string").inc(unindexed.long_strings)
        if outcome.retries:
            self._metrics.es_errors.labels("write", "retried").inc(outcome.retries)

    def failed(self, error: Exception) -> None:
        self._metrics.requests.labels(self.space, _outcome_of(error)).inc()
        rejected = _REJECTED.get(type(error))
        if rejected is None or not isinstance(error, LogspaceError):
            return
        reason, parameter = rejected
        count = int((error.parameters or {}).get(parameter, self._events))
        self._metrics.events.labels(self.space, "rejected", reason).inc(count)
        if self._events > count:
            # The rest of a batch answered 422 or 503 is stored, now or by an earlier attempt.
            self._metrics.events.labels(self.space, "accepted", "").inc(self._events - count)
        if not isinstance(error, InvalidEvents):
            self._metrics.es_errors.labels("write", reason).inc()

    def finish(self) -> None:
        if self._started is not None:
            self._metrics.tally.write_seconds.add(time.perf_counter() - self._started)
            self._metrics.tally.events_in_flight -= self._events


def _outcome_of(error: Exception) -> str:
    """The `outcome` label of a request that raised `error`."""
    if isinstance(error, LogspaceError):
        return error.type.lower()
    if isinstance(error, ClientDisconnect):  # gone before its body was whole
        return CLIENT_CLOSED_TYPE.lower()
    return "internal_error"


async def get_metrics(request: Request) -> Response:
    hq = request.app.state.hq
    token: str | None = hq.settings.metrics_token
    if token is not None and not _bearer_is(request.headers.get("authorization", ""), token):
        raise MetricsTokenRequired()
    metrics: Metrics = hq.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _bearer_is(authorization: str, token: str) -> bool:
    """Whether `authorization` is `Bearer <token>`, compared in constant time."""
    scheme, _, credentials = authorization.partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(token_digest(presented), token_digest(token))
