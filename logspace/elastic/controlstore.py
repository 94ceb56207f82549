"""The control side of the store: the only place agent controllers' capabilities reach
Elasticsearch.

A third class beside `store.Store` (events) and `readstore.ReadStore` (queries), on the same
client. It owns one index, `LOGSPACE_CONTROL_INDEX`, whose settings and mappings are data in
`index_templates/control-index.json`. The index is created when first needed and checked again
every `check_seconds` and after Elasticsearch was unreachable (it may have come back empty); a
newer version of the file adds its fields to the mapping. Writes refresh at once, so a listing
right after sees them; every search is confined to one space. Request bodies come from the pure
`capabilities` module.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.resources.abc import Traversable
from typing import Any, Final
from urllib.parse import quote

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch import NotFoundError as EsNotFound

from logspace.elastic.client import JSON, describe, retryable
from logspace.elastic.readstore import scoped
from logspace.elastic.templates import TEMPLATES_DIR
from logspace.errors import StoreUnavailable

__all__ = ["CONTROL_INDEX_FILE", "ControlStore", "index_body"]

log = logging.getLogger(__name__)

CONTROL_INDEX_FILE: Final = TEMPLATES_DIR / "control-index.json"
CHECK_SECONDS: Final = 60.0


def index_body(path: Traversable = CONTROL_INDEX_FILE) -> tuple[int, dict[str, Any]]:
    """The version of the control index definition, and the body that creates the index."""
    definition = orjson.loads(path.read_bytes())
    version = int(definition["version"])
    mappings = {**definition["mappings"], "_meta": {"managed_by": "logspace", "version": version}}
    return version, {"settings": definition["settings"], "mappings": mappings}


class ControlStore:
    def __init__(
        self,
        client: AsyncElasticsearch,
        index: str,
        retry_after: int,
        *,
        check_seconds: float = CHECK_SECONDS,
        replicas: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self.index = index
        self._retry_after = retry_after
        self.check_seconds = check_seconds
        self._version, self._body = index_body()
        if replicas is not None:  # as the event indices have them (LOGSPACE_INDEX_REPLICAS)
            self._body["settings"]["index"].update(replicas)
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def ensure_index(self) -> str:
        """Create the index or bring its mapping up to date: `created`, `unchanged`, or
        `updated 1 -> 2`."""
        try:
            response = await self._client.perform_request(
                "GET", f"/{self.index}/_mapping", headers=JSON
            )
        except EsNotFound:
            return await self._create()
        (mapping,) = response.body.values()
        installed = int(mapping["mappings"].get("_meta", {}).get("version", 0))
        if installed >= self._version:
            return "unchanged"  # a newer HQ's mapping, during a rolling upgrade, is fine too
        update = {k: v for k, v in self._body["mappings"].items() if k != "dynamic"}
        await self._client.perform_request(
            "PUT", f"/{self.index}/_mapping", headers=JSON, body=update
        )
        return f"updated {installed} -> {self._version}"

    async def _create(self) -> str:
        try:
            await self._client.perform_request(
                "PUT", f"/{self.index}", headers=JSON, body=self._body
            )
        except ApiError as error:
            if error.status_code == 400 and "resource_already_exists" in str(error.error):
                return "unchanged"  # another worker was quicker
            raise
        return "created"

    async def put(self, document_id: str, source: dict[str, Any]) -> None:
        """Store (or replace) one document, visible to searches when this returns."""
        await self._ready()
        await self._call(
            "PUT",
            f"/{self.index}/_doc/{quote(document_id, safe='')}",
            source,
            {"refresh": "true"},
        )

    async def search(self, space: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The sources of the space's documents matching `body`."""
        await self._ready()
        answer = await self._call("POST", f"/{self.index}/_search", scoped(body, space))
        return [hit["_source"] for hit in answer["hits"]["hits"]]

    async def _ready(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._checked_at is not None and now - self._checked_at < self.check_seconds:
            return
        async with self._lock:
            if self._checked_at is not None and now - self._checked_at < self.check_seconds:
                return
            try:
                outcome = await self.ensure_index()
            except (ApiError, TransportError) as error:
                raise self._unavailable(error) from error
            if outcome != "unchanged":
                log.info("control index %s: %s", self.index, outcome)
            self._checked_at = asyncio.get_running_loop().time()

    async def _call(
        self, method: str, path: str, body: Any, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = await self._client.perform_request(
                method, path, params=params, headers=JSON, body=body
            )
        except (ApiError, TransportError) as error:
            if isinstance(error, TransportError):
                self._checked_at = None  # it may come back empty: check the index first
            if not retryable(error):
                raise  # a request HQ should not have built: an internal error, logged
            raise self._unavailable(error) from error
        return response.body

    def _unavailable(self, error: Exception) -> StoreUnavailable:
        reason = describe(error)
        return StoreUnavailable(
            f"The control index cannot be used now: {reason}.",
            {"reason": reason},
            retry_after=self._retry_after,
        )
