"""Why an index has no primary shard: Elasticsearch's allocation explanation, in one line.

`Store` asks when a `_bulk` request has waited as long as the retry window: a new index on a
disk past its watermark, say, has no primary and cannot get one, and Elasticsearch would hold
the request for 30 s and more before it answers 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from logspace.elastic.client import JSON

__all__ = ["EXPLAIN_SECONDS", "unallocatable"]

# As long as a readiness check may take: the write waits on its own deadline meanwhile.
EXPLAIN_SECONDS: Final = 3.0
_EXPLAIN_FILTER: Final = (
    "current_state,can_allocate,allocate_explanation,"
    "node_allocation_decisions.deciders.decider,node_allocation_decisions.deciders.decision,"
    "node_allocation_decisions.deciders.explanation"
)


async def unallocatable(client: AsyncElasticsearch, indices: Sequence[str]) -> str | None:
    """Why the first of `indices` whose primary shard cannot be allocated cannot be, or
    None. Needs the cluster `monitor` privilege; without it, or for an index not created
    yet, there is nothing to tell."""
    for index in indices[:3]:
        try:
            response = await client.options(request_timeout=EXPLAIN_SECONDS).perform_request(
                "POST",
                "/_cluster/allocation/explain",
                params={"filter_path": _EXPLAIN_FILTER},
                headers=JSON,
                body={"index": index, "shard": 0, "primary": True},
            )
        except (ApiError, TransportError):
            continue
        explained = response.body
        if explained.get("current_state") != "unassigned":
            continue
        if explained.get("can_allocate") != "no":
            continue
        refusals = [
            f"{decider.get('decider')}: {decider.get('explanation')}"
            for node in explained.get("node_allocation_decisions", [])
            for decider in node.get("deciders", [])
            if decider.get("decision") == "NO"
        ]
        detail = refusals[0] if refusals else explained.get("allocate_explanation", "")
        return f"index {index} has no primary shard and Elasticsearch cannot allocate one: {detail}"
    return None
