"""The Elasticsearch client HQ talks through, and what its errors mean.

One `AsyncElasticsearch` per HQ process, made by `connect`, shared by the event, read and
control stores. Given several nodes (`LOGSPACE_ES_URL` with commas) it spreads requests over
them in turn and sets a node that cannot be reached aside for a while (1 s, doubling up to
30 s, as elastic_transport's node pool does). The stores retry what is worth retrying
themselves, within their own deadlines; the client itself only sends a request that could not
reach its node (refused or broken connection) on to the next node, at once, each node at
most once: that is safe for every request HQ makes (`_bulk` creates with ids, the rest read
or put whole resources). Timeouts are not passed on (the node may still be working on it),
nor are answers. Sniffing stays off: nodes behind NAT or in containers publish addresses HQ
may not reach, so HQ talks to exactly the nodes it is given.
"""

from __future__ import annotations

from typing import Any, Final

from elastic_transport import ConnectionTimeout, NdjsonSerializer, TlsError
from elasticsearch import ApiError, AsyncElasticsearch, OrjsonSerializer, TransportError

from logspace.elastic import tls
from logspace.settings import Settings

__all__ = ["JSON", "NDJSON", "connect", "describe", "retryable"]

JSON: Final = {"accept": "application/json", "content-type": "application/json"}
NDJSON: Final = {"accept": "application/json", "content-type": "application/x-ndjson"}


class _Serializer(OrjsonSerializer):
    """orjson, but a `_bulk` response that reports no errors is not read any further: under
    `bulk.RESPONSE_FILTER` it starts with `{"errors":false`, and its items (one per event)
    would cost HQ more CPU to parse than the rest of the write."""

    def loads(self, data: bytes) -> Any:
        if data.startswith(b'{"errors":false'):
            return {"errors": False}
        return super().loads(data)


class _BulkBodySerializer(NdjsonSerializer):
    """`bulk.Bulk` bodies are NDJSON already: sent as they are, not copied twice over."""

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def connect(settings: Settings) -> AsyncElasticsearch:
    options: dict[str, Any] = {}
    if settings.es_api_key:
        options["api_key"] = settings.es_api_key
    elif settings.es_username:
        options["basic_auth"] = (settings.es_username, settings.es_password or "")
    options.update(tls.client_options(settings))
    nodes = settings.es_urls
    return AsyncElasticsearch(
        nodes,
        serializers={
            OrjsonSerializer.mimetype: _Serializer(),
            NdjsonSerializer.mimetype: _BulkBodySerializer(),
        },
        request_timeout=settings.es_timeout,
        # The stores retry themselves, only what needs it, within their own deadlines; the
        # client only tries the next node when a connection to one fails.
        max_retries=len(nodes) - 1,
        retry_on_status=(),
        retry_on_timeout=False,
        # The coalescer's bulks, with room for reads, control and template checks beside
        # them (the default, 10, made requests queue for a connection).
        connections_per_node=settings.bulk_concurrency + 16,
        **options,
    )


def retryable(error: Exception) -> bool:
    """Whether the same request may succeed later: 429, 5xx, or no answer at all. Any other
    answer means a request HQ should not have sent (or credentials an operator must fix)."""
    if isinstance(error, ApiError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, TransportError)


def describe(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"Elasticsearch answered {error.status_code} ({error.error})"
    if isinstance(error, TlsError) or (
        # A client certificate Elasticsearch refuses shows after the handshake, as a reset.
        isinstance(error, TransportError) and "[SSL" in str(error.message)
    ):
        # Most often a CA or client certificate that does not fit: say what TLS said.
        return (
            f"TLS with Elasticsearch failed ({error.message}); check LOGSPACE_ES_CA_CERTS "
            "and LOGSPACE_ES_CLIENT_CERT"
        )
    if isinstance(error, ConnectionTimeout):
        return "Elasticsearch did not answer in time (ConnectionTimeout)"
    return f"Elasticsearch could not be reached ({type(error).__name__})"
