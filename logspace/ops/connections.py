"""What the metrics say of HQ's connections: how many are open against how many the process
may hold, and the requests the server refused itself before any endpoint saw them.

A fleet's agents each keep a connection open, so the open-file limit bounds the fleet one
HQ process can serve: past it, new connections are closed at once and nothing else says so
(`openfiles`). `logspace serve`'s protocol (`protocol.HQProtocol`) reports each connection
and each refusal here; under plain uvicorn nothing is counted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from logspace.errors import HeadersTooLarge, LogspaceError, RequestTimeout

__all__ = ["Connections"]

# The refusals the server makes itself, by the error type of its answer.
_REFUSALS = (RequestTimeout.type, HeadersTooLarge.type)


class Connections:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Workers hold connections of their own, each up to its own limit: both are summed.
        self.open = Gauge(
            "logspace_connections",
            "HTTP connections open to HQ now (an agent keeps one).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.open_files_limit = Gauge(
            "logspace_open_files_limit",
            "HQ's open-file limit: every connection takes a file, so HQ holds fewer "
            "connections than this (it keeps a few tens of files for itself).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.refused = Counter(
            "logspace_refused_requests",
            "Requests HQ's server answered itself, ending their connection, before any "
            "endpoint saw them, by reason: request_timeout (408: the head, or a small body, "
            "did not arrive in time), headers_too_large (431).",
            ["reason"],
            registry=registry,
        )
        for reason in _REFUSALS:
            self.refused.labels(reason.lower())  # every reason shows, at 0 until it happens

    def opened(self) -> None:
        self.open.inc()

    def closed(self) -> None:
        self.open.dec()

    def refused_with(self, error: LogspaceError) -> None:
        self.refused.labels(error.type.lower()).inc()
