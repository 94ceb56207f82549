"""Thin endpoints of the read API: authenticate, read the parameters, ask the store, answer.

Every endpoint here needs a token with read access (`_read`) and sees that token's one space.
Parameters come from the query string (GET) or a JSON body (POST), parsed by the pure query
modules; each route is mounted at `/x` and `/api/x`, like `PUT /events`. Each read is
counted and timed per endpoint (`metrics.Metrics.read`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from logspace import openapi
from logspace.body import Reservation, read_body
from logspace.decoder import load_json
from logspace.elastic.readstore import ReadStore
from logspace.errors import InvalidParameter, StoreUnavailable
from logspace.hq import HQ
from logspace.read import activity, export, search, suggestions, timeseries
from logspace.read.params import Params

__all__ = ["READ_ROUTES"]


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")


def _reader(hq: HQ) -> ReadStore:
    if hq.reader is None:
        raise StoreUnavailable("This HQ's event store cannot be searched.", {})
    return hq.reader


Handler = Callable[[Request], Awaitable[Response]]


def _measured(endpoint: str) -> Callable[[Handler], Handler]:
    """Count and time every request to `handler` as a read of `endpoint`."""

    def measure(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def measured(request: Request) -> Response:
            hq: HQ = request.app.state.hq
            with hq.metrics.read(endpoint) as read:
                try:
                    return await handler(request)
                finally:
                    read.space = getattr(request.state, "space", "")

        return measured

    return measure


async def _read(request: Request) -> tuple[HQ, str, ReadStore, Params]:
    """The space the token may read, the read store, and the request's parameters."""
    hq: HQ = request.app.state.hq
    grant = hq.tokens.grant_for(request.headers)
    # Counted and logged under its space even when the token may not read there.
    request.state.space = grant.space
    space = grant.require("read")
    query = Params.from_query(request.query_params.multi_items())
    params = query
    if request.method == "POST":
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
            reservation.release()  # a query body is parsed at once; it holds no bytes after
        if body.strip():
            params = Params.from_body(_json_body(body, request.url.path), query=query)
    return hq, space, _reader(hq), params


def _json_body(body: bytes, path: str) -> Any:
    value = load_json(body)
    if isinstance(value, list) and path.endswith("/events"):
        raise InvalidParameter(
            "body", "POST searches events and takes a JSON object; store events with PUT"
        )
    return value


@_measured("search")
async def search_events(request: Request) -> Response:
    _, space, reader, params = await _read(request)
    wanted = search.read_search(params)
    response = await reader.search(space, search.search_body(wanted))
    return _json(search.page(wanted, response))


@_measured("export")
async def export_events(request: Request) -> Response:
    _, space, reader, params = await _read(request)
    wanted = export.read_export(params)
    properties: list[str] = []
    if wanted.format == "csv":
        names = await reader.property_names(space)
        if names:
            counts = await reader.search(space, export.columns_body(wanted.filter, names))
            properties = export.columns(names, counts)
    # The first page is fetched before answering, so a failure still gets an error answer.
    first = await reader.search(space, wanted.page_body(0, None))
    headers = {}
    if wanted.format == "csv":
        headers["content-disposition"] = 'attachment; filename="events.csv"'
    return StreamingResponse(
        export.stream(wanted, first, functools.partial(reader.search, space), properties),
        media_type=wanted.media_type,
        headers=headers,
    )


@_measured("time-series")
async def time_series(request: Request) -> Response:
    _, space, reader, params = await _read(request)
    series = timeseries.read_time_series(params)
    if any(definition.property for definition in series.definitions):
        timeseries.check_properties(series, space, await reader.property_names(space))
    responses = await reader.msearch(space, timeseries.bodies(series))
    return _json(timeseries.answer(series, responses))


@_measured("suggestions")
async def suggest(request: Request) -> Response:
    _, space, reader, params = await _read(request)
    wanted = suggestions.read_suggest(params)
    names = suggestions.candidates(wanted, await reader.property_names(space))
    response = await reader.search(space, suggestions.body(wanted, names))
    return _json(suggestions.answer(wanted, names, response))


@_measured("agent-activity")
async def agent_activity(request: Request) -> Response:
    _, space, reader, params = await _read(request)
    wanted = activity.read_activity(params, now=int(time.time() * 1000))
    answer = await activity.gather(
        wanted,
        functools.partial(reader.search, space),
        functools.partial(reader.msearch, space),
    )
    return _json(answer)


async def openapi_document(request: Request) -> Response:
    return _json(openapi.document())


# Path, endpoint, methods: the read API's part of `app.API_ROUTES`.
READ_ROUTES: Final = (
    ("/events", search_events, ("GET", "POST")),
    ("/events/export", export_events, ("GET", "POST")),
    ("/time-series", time_series, ("POST",)),
    ("/suggestions", suggest, ("GET", "POST")),
    ("/agent-activity", agent_activity, ("GET",)),
    ("/openapi.json", openapi_document, ("GET",)),
)
