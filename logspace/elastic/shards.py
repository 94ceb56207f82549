"""How full of shards the cluster is: the shards it holds against the most its data nodes may.

Elasticsearch refuses to create an index (so HQ's first write of a new month, quarter or
year) that would take the cluster past `cluster.max_shards_per_node` (1000 by default) times
its data nodes, counting every shard copy of the open indices, assigned or not. Each event
index is one primary plus its replicas, so a fleet of many spaces reaches that limit by itself
(docs/operations.md#shards): HQ reads both numbers to warn before it is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic.client import JSON, describe
from logspace.errors import StoreUnavailable

__all__ = ["DEFAULT_MAX_SHARDS_PER_NODE", "ShardUse", "read_shard_use"]

DEFAULT_MAX_SHARDS_PER_NODE: Final = 1000
_SETTING: Final = "cluster.max_shards_per_node"


@dataclass(frozen=True)
class ShardUse:
    """`shards`: shard copies in the cluster (active, initializing and unassigned);
    `per_node`: `cluster.max_shards_per_node`; `data_nodes`: nodes that hold data."""

    shards: int
    per_node: int
    data_nodes: int

    @property
    def limit(self) -> int:
        return self.per_node * self.data_nodes

    @property
    def percent(self) -> float:
        return 100.0 * self.shards / self.limit if self.limit else 100.0

    def warning(self, percent: int) -> str | None:
        """What to tell an operator once the cluster holds `percent` % of its limit, or None."""
        if self.percent < percent:
            return None
        return (
            f"the cluster holds {self.shards} shards, {self.percent:.0f} % of the "
            f"{self.limit} its {self.data_nodes} data node(s) may hold "
            f"({_SETTING} = {self.per_node}); new indices fail beyond that: raise the limit, "
            "add data nodes, or use a longer LOGSPACE_INDEX_PARTITION"
        )


def max_shards_per_node(body: dict[str, Any]) -> int:
    """The limit in force from `GET _cluster/settings?include_defaults` (filtered to it):
    transient over persistent over the node's own (defaults)."""
    for scope in ("transient", "persistent", "defaults"):
        value = ((body.get(scope) or {}).get("cluster") or {}).get("max_shards_per_node")
        if isinstance(value, int | str) and str(value).isdigit():
            return int(value)
    return DEFAULT_MAX_SHARDS_PER_NODE


async def read_shard_use(client: AsyncElasticsearch, retry_after: int) -> ShardUse:
    """Two small GETs (the cluster `monitor` privilege); `StoreUnavailable` if either fails."""
    try:
        return await _read(client)
    except (ApiError, TransportError) as error:
        raise StoreUnavailable(
            f"Could not read the cluster's shard count: {describe(error)}.",
            {"reason": describe(error)},
            retry_after=retry_after,
        ) from error


async def _read(client: AsyncElasticsearch) -> ShardUse:
    health = await client.perform_request(
        "GET",
        "/_cluster/health",
        params={
            "filter_path": "active_shards,initializing_shards,unassigned_shards,"
            "number_of_data_nodes"
        },
        headers=JSON,
    )
    settings = await client.perform_request(
        "GET",
        "/_cluster/settings",
        # Not flat: filter_path reads the dots of a flat name as levels.
        params={"include_defaults": "true", "filter_path": f"*.{_SETTING}"},
        headers=JSON,
    )
    counts = health.body
    return ShardUse(
        shards=sum(
            int(counts.get(key, 0))
            for key in ("active_shards", "initializing_shards", "unassigned_shards")
        ),
        per_node=max_shards_per_node(settings.body or {}),
        data_nodes=int(counts.get("number_of_data_nodes", 0)),
    )
