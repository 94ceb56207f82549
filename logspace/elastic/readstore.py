"""The read side of the store: the only place HQ's queries reach Elasticsearch.

A second class beside `store.Store` (which writes), on the same client. Every request is
confined to one space twice over: it searches only that space's indices,
`<prefix>-<space>-*`, and its query is wrapped in a filter on the `space` field. Request
bodies are built by the pure query modules; nothing here decides what to ask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic.client import JSON, NDJSON, describe, retryable
from logspace.errors import StoreUnavailable
from logspace.read.query import FAMILY_TYPES

__all__ = ["ReadStore", "scoped"]

# A space without events yet has no indices: that is an empty answer, not an error.
_LENIENT: Final = {"ignore_unavailable": "true", "allow_no_indices": "true"}
PROPERTY_FIELDS: Final = "*-properties.*"


def scoped(body: dict[str, Any], space: str) -> dict[str, Any]:
    """`body` with its query confined to `space`."""
    clauses: list[dict[str, Any]] = [{"term": {"space": space}}]
    if "query" in body:
        clauses.append(body["query"])
    return {**body, "query": {"bool": {"filter": clauses}}}


class ReadStore:
    """`failed`, if given, hears of every failed request: `unavailable` (Elasticsearch
    unreachable, 429, 5xx) or `refused` (another 4xx: a query HQ should not have built)."""

    def __init__(
        self,
        client: AsyncElasticsearch,
        index_prefix: str,
        retry_after: int,
        failed: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._prefix = index_prefix
        self._retry_after = retry_after
        self._failed = failed or (lambda reason: None)

    def indices(self, space: str) -> str:
        return f"{self._prefix}-{space}-*"

    async def search(self, space: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", f"/{self.indices(space)}/_search", JSON, scoped(body, space)
        )
        return result

    async def msearch(self, space: str, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several searches in one request; the responses in the same order."""
        if not bodies:
            return []
        header = orjson.dumps({"index": self.indices(space), **_LENIENT_MSEARCH})
        lines = b"".join(header + b"\n" + orjson.dumps(scoped(b, space)) + b"\n" for b in bodies)
        answer = await self._request("POST", "/_msearch", NDJSON, lines)
        responses: list[dict[str, Any]] = answer["responses"]
        for response in responses:
            if "error" in response:
                error = _failed(response)
                self._failed("unavailable" if isinstance(error, StoreUnavailable) else "refused")
                raise error
        return responses

    async def property_names(self, space: str) -> list[str]:
        """Every typed property mapped in the space's indices, e.g. `long-properties.used`."""
        answer = await self._request(
            "GET", f"/{self.indices(space)}/_field_caps", JSON, None, {"fields": PROPERTY_FIELDS}
        )
        # The family objects themselves are listed too, as type `object`.
        return sorted(
            name
            for name, caps in answer["fields"].items()
            if set(caps) != {"object"} and name.split(".", 1)[0] in FAMILY_TYPES
        )

    async def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = await self._client.perform_request(
                method, path, params={**_LENIENT, **(params or {})}, headers=headers, body=body
            )
        except (ApiError, TransportError) as error:
            if not retryable(error):
                self._failed("refused")
                raise  # a request HQ should not have built: an internal error, logged
            self._failed("unavailable")
            raise StoreUnavailable(
                f"Elasticsearch cannot answer now: {describe(error)}.",
                {"reason": describe(error)},
                retry_after=self._retry_after,
            ) from error
        return response.body


_LENIENT_MSEARCH: Final = {"ignore_unavailable": True, "allow_no_indices": True}


class _SearchFailed(Exception):
    """One search of an `_msearch` failed; like a failed request, it is HQ's error."""


def _failed(response: dict[str, Any]) -> Exception:
    status = int(response.get("status", 500))
    reason = str(response["error"])
    if status == 429 or status >= 500:
        return StoreUnavailable(
            f"Elasticsearch cannot answer now: it answered {status}.", {"reason": reason}
        )
    return _SearchFailed(f"Elasticsearch refused a search ({status}): {reason}")
