"""Endpoints of central control: capabilities up from agent controllers, orders down to them.

Which token each needs. A controller uses the token it sends events with, and agents usually
hold write-only tokens; operators list with read tokens:

    PUT /capabilities/{controller_id}   write access (like PUT /events)
    GET /orders/{controller_id}         any token of the space, read or write
    GET /capabilities, GET /orders      read access

Each sees only its token's space: one space never reads or changes another's orders or
capabilities. Every route is mounted at `/x` and `/api/x`, like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from logspace.body import Reservation, read_body
from logspace.control import capabilities
from logspace.control.orderbook import OrderBook, Served
from logspace.elastic.controlstore import ControlStore
from logspace.elastic.store import EventStore, Store
from logspace.errors import InvalidParameter, OrderNotFound, StoreUnavailable
from logspace.hq import HQ
from logspace.settings import Settings
from logspace.spaces.grants import token_from_headers

__all__ = ["CONTROL_ROUTES", "Control", "not_modified", "serving"]


@dataclass
class Control:
    """What the control endpoints need, built once per app (and per worker)."""

    orders: OrderBook
    # None when the event store is not Elasticsearch (e.g. an in-memory one).
    store: ControlStore | None


@contextlib.asynccontextmanager
async def serving(app: Starlette, settings: Settings, store: EventStore) -> AsyncIterator[Control]:
    """Load the orders, watch their files while HQ runs, and reach the control index."""
    orders = OrderBook(
        settings.orders_dir, settings.orders_reload_seconds, settings.orders_default_commit_seconds
    )
    control = Control(orders, store.control() if isinstance(store, Store) else None)
    app.state.control = control
    watcher = asyncio.create_task(orders.watch()) if orders.directory is not None else None
    try:
        yield control
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")


def _context(request: Request) -> tuple[HQ, Control]:
    return request.app.state.hq, request.app.state.control


def _store(control: Control) -> ControlStore:
    if control.store is None:
        raise StoreUnavailable("This HQ's store cannot keep capabilities.", {})
    return control.store


def _only(request: Request, *known: str) -> None:
    for name in request.query_params:
        if name not in known:
            allowed = ", ".join(known) if known else "none"
            raise InvalidParameter(name, f"unknown parameter; known: {allowed}")


async def put_capabilities(request: Request) -> Response:
    hq, control = _context(request)
    space = request.state.space = hq.tokens.space_for(request.headers, "write")
    controller_id = capabilities.check_controller_id(request.path_params["controller_id"])
    reservation = Reservation(hq.admission)
    try:
        body = await read_body(
            request.stream(),
            request.headers,
            hq.settings.max_body_bytes,
            reservation,
            hq.settings.request_read_seconds,
        )
    finally:
        reservation.release()  # parsed at once; nothing holds the bytes after
    uploaded = capabilities.parse(body, controller_id)
    document_id, source = capabilities.document(space, uploaded, datetime.now(UTC))
    await _store(control).put(document_id, source)
    return _json(capabilities.entry(source))


async def list_capabilities(request: Request) -> Response:
    hq, control = _context(request)
    space = request.state.space = hq.tokens.space_for(request.headers, "read")
    _only(request, "controller-id")
    controller_id = request.query_params.get("controller-id")
    if controller_id is not None:
        capabilities.check_controller_id(controller_id)
    found = await _store(control).search(space, capabilities.search_body(controller_id))
    return _json({"capabilities": [capabilities.entry(source) for source in found]})


async def get_order(request: Request) -> Response:
    hq, control = _context(request)
    # A controller reads its order with the token it writes events with: any access will do.
    space = request.state.space = hq.tokens.current.grant_for(
        token_from_headers(request.headers)
    ).space
    controller_id = capabilities.check_controller_id(request.path_params["controller_id"])
    served = control.orders.order(space, controller_id)
    if served is None:
        raise OrderNotFound(controller_id)
    headers = {
        "Last-Modified": email.utils.format_datetime(served.last_modified, usegmt=True),
        "ETag": served.etag,
        # Caches must ask again each time: a controller polls to learn of changes.
        "Cache-Control": "no-cache",
    }
    if not_modified(request.headers, served):
        return Response(status_code=304, headers=headers)
    return Response(served.body, media_type="application/json", headers=headers)


async def list_orders(request: Request) -> Response:
    hq, control = _context(request)
    space = request.state.space = hq.tokens.space_for(request.headers, "read")
    _only(request)
    return _json(control.orders.listing(space))


def not_modified(headers: Mapping[str, str], served: Served) -> bool:
    """Whether a conditional GET may be answered 304. `If-None-Match` wins when sent (RFC 9110);
    else an `If-Modified-Since` not older than the order's `Last-Modified` (the original
    answered 304 only when the two were equal)."""
    tags = headers.get("if-none-match")
    if tags is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in tags.split(",")}
        return "*" in wanted or served.etag in wanted
    since = _http_date(headers.get("if-modified-since", ""))
    return since is not None and served.last_modified <= since


def _http_date(value: str) -> datetime | None:
    """An HTTP date (RFC 1123, RFC 850 or asctime); None for anything else, which is ignored."""
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Path, endpoint, methods: central control's part of `app.API_ROUTES`.
CONTROL_ROUTES: Final = (
    ("/capabilities", list_capabilities, ("GET",)),
    ("/capabilities/{controller_id}", put_capabilities, ("PUT",)),
    ("/orders", list_orders, ("GET",)),
    ("/orders/{controller_id}", get_order, ("GET",)),
)
