"""Event search: pages of events in time order, and the cursors between them. Pure.

Events are sorted by (`timestamp`, `id`). That pair is unique within a space (an event's
month picks its index and its id is the document id there), so `search_after` on it pages
without duplicates or gaps, and needs no state in Elasticsearch: a cursor never expires.
Events stored while a client pages show up if they sort after the cursor, and never shift
a page, since a page starts after a key, not at an offset. A cursor carries a fingerprint of
its filter and order, so it cannot be used with another query by mistake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from logspace.errors import InvalidParameter
from logspace.read.params import Params
from logspace.read.query import EventFilter, read_filter

__all__ = [
    "DEFAULT_SIZE",
    "MAX_SIZE",
    "EventSearch",
    "decode_cursor",
    "encode_cursor",
    "fingerprint",
    "page",
    "page_body",
    "read_search",
    "search_body",
]

DEFAULT_SIZE: Final = 100
MAX_SIZE: Final = 1000
MAX_CURSOR_LENGTH: Final = 4096

After = tuple[int, str]


@dataclass(frozen=True)
class EventSearch:
    filter: EventFilter
    order: str
    size: int
    cursor: str | None = None
    after: After | None = None


def read_search(params: Params) -> EventSearch:
    """The search parameters: the filter's, plus `order`, `size` and `cursor`."""
    event_filter = read_filter(params)
    order = params.choice("order", ("asc", "desc"), default="asc")
    size = params.integer("size", default=DEFAULT_SIZE, minimum=0, maximum=MAX_SIZE)
    cursor = params.text("cursor", max_length=MAX_CURSOR_LENGTH)
    params.finish()
    after = None
    if cursor is not None:
        after = decode_cursor(cursor, fingerprint(event_filter, order), params.name("cursor"))
    return EventSearch(event_filter, order, size, cursor, after)


def page_body(
    event_filter: EventFilter, order: str, size: int, after: After | None, *, total: bool
) -> dict[str, Any]:
    """One page of events; the stored `space` field is left out of them."""
    body: dict[str, Any] = {
        "query": event_filter.query(),
        "sort": [{"timestamp": {"order": order}}, {"id": {"order": order}}],
        "size": size,
        "_source": {"excludes": ["space"]},
        "track_total_hits": total,
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


def search_body(search: EventSearch) -> dict[str, Any]:
    # One event more than asked for tells whether there are more.
    return page_body(search.filter, search.order, search.size + 1, search.after, total=True)


def page(search: EventSearch, response: dict[str, Any]) -> dict[str, Any]:
    """The answer to a search, from Elasticsearch's response to `search_body`."""
    hits = response["hits"]["hits"]
    shown = hits[: search.size]
    next_cursor = search.cursor
    if shown:
        next_cursor = encode_cursor(shown[-1]["sort"], fingerprint(search.filter, search.order))
    return {
        "total": response["hits"]["total"]["value"],
        "events": [hit["_source"] for hit in shown],
        "next-cursor": next_cursor,
        "has-more": len(hits) > search.size,
    }


def fingerprint(event_filter: EventFilter, order: str) -> str:
    canonical = orjson.dumps([event_filter.query(), order], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(sort_values: list[Any], query_fingerprint: str) -> str:
    raw = orjson.dumps({"after": sort_values, "query": query_fingerprint})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str, query_fingerprint: str, parameter: str) -> After:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidParameter(parameter, "not a cursor from a previous answer") from None
    after = data.get("after") if isinstance(data, dict) else None
    if not (
        isinstance(after, list)
        and len(after) == 2
        and type(after[0]) is int
        and -(2**63) <= after[0] < 2**63
        and isinstance(after[1], str)
    ):
        raise InvalidParameter(parameter, "not a cursor from a previous answer")
    if data.get("query") != query_fingerprint:
        raise InvalidParameter(
            parameter, "this cursor belongs to another query; send the same filter and order"
        )
    return after[0], after[1]
