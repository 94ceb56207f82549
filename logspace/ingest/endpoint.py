"""`PUT /events`: authenticate, read the body, decode, check the budget, store, answer."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from logspace.body import Reservation, read_body
from logspace.hq import HQ
from logspace.ingest.decode import decode_batch

__all__ = ["INGEST_ROUTES", "put_events"]


async def put_events(request: Request) -> Response:
    hq: HQ = request.app.state.hq
    reservation = Reservation(hq.admission)
    with hq.metrics.ingest() as ingest:
        grant = hq.tokens.grant_for(request.headers)
        # Counted and logged under its space even when the token may not write there.
        ingest.space = request.state.space = grant.space
        space = grant.require("write")
        try:
            body = await read_body(
                request.stream(), request.headers, hq.settings.max_body_bytes, reservation
            )
            batch = decode_batch(
                body,
                space,
                hq.limits,
                prefix=hq.settings.index_prefix,
                partition=hq.settings.index_partition,
            )
            del body  # the events hold what is needed; free the bytes while Elasticsearch works
            ingest.writing(len(batch.events))
            await hq.budget.check(space, batch, hq.store.known_fields)
            # `write` empties a list of events once encoded.
            ingest.stored(await hq.store.write(batch.events, space), batch.unindexed)
            hq.budget.record(space, batch.fields)
        finally:
            reservation.release()
    return _ACCEPTED


# Every stored batch gets the same answer; a response object is only read when it is sent.
_ACCEPTED: Final = Response(status_code=202)


# Path, endpoint, methods: ingest's part of `app.API_ROUTES`.
INGEST_ROUTES: Final = (("/events", put_events, ("PUT",)),)
