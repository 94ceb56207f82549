"""`PUT /events`: authenticate, read the body, decode, check the budget, store, answer."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from logspace.body import Reservation, read_body, read_whole
from logspace.hq import HQ
from logspace.ingest.decode import decode_batch

__all__ = ["ACCEPTED", "INGEST_ROUTES", "put_events", "store_events"]


async def put_events(request: Request) -> Response:
    hq: HQ = request.app.state.hq
    await store_events(hq, request.headers, request.stream(), request.scope.setdefault("state", {}))
    return ACCEPTED


async def store_events(
    hq: HQ,
    headers: Mapping[str, str],
    body: AsyncIterable[bytes] | bytes,
    state: dict[str, Any],
) -> None:
    """Store the request's batch, or raise the `LogspaceError` to answer; `state` is the
    request's (`request.state`), where the access log finds its space; `body` its chunks
    as they arrive, or all of it when the server has read it already. The routed endpoint
    and HQ's lean path (`app.HQApp`) both call this."""
    reservation = Reservation(hq.admission)
    with hq.metrics.ingest() as ingest:
        grant = hq.tokens.grant_for(headers)
        # Counted and logged under its space even when the token may not write there.
        ingest.space = state["space"] = grant.space
        space = grant.require("write")
        try:
            limit = hq.settings.max_body_bytes
            if isinstance(body, bytes):  # read already: no coroutine to read it
                read = read_whole(body, headers, limit, reservation)
            else:
                read = await read_body(
                    body, headers, limit, reservation, hq.settings.request_read_seconds
                )
            batch = decode_batch(
                read,
                space,
                hq.limits,
                prefix=hq.settings.index_prefix,
                partition=hq.settings.index_partition,
            )
            del read  # the events hold what is needed; free the bytes while Elasticsearch works
            ingest.writing(len(batch.events))
            new = hq.budget.known(space, batch)
            if new is None:
                new = await hq.budget.check(space, batch, hq.store.known_fields)
            # `write` empties a list of events once encoded.
            ingest.stored(await hq.store.write(batch.events, space), batch.unindexed)
            hq.budget.record(space, new)
        finally:
            reservation.release()


# Every stored batch gets the same answer; a response object is only read when it is sent.
ACCEPTED: Final = Response(status_code=202)


# Path, endpoint, methods: ingest's part of `app.API_ROUTES`.
INGEST_ROUTES: Final = (("/events", put_events, ("PUT",)),)
