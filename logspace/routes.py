"""Thin endpoint functions: authenticate, read the body, decode, check the budget, store."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from .body import Admission, Reservation, read_body
from .budget import FieldBudget
from .decode import Limits, decode_batch
from .metrics import Metrics
from .readstore import ReadStore
from .settings import Settings
from .store import EventStore
from .tokens import TokenRegistry

__all__ = ["HQ", "put_events"]


@dataclass
class HQ:
    """What the endpoints need, built once per app (and per worker)."""

    settings: Settings
    tokens: TokenRegistry
    store: EventStore
    metrics: Metrics
    # The read side; None when the event store cannot be searched (e.g. an in-memory one).
    reader: ReadStore | None = None
    limits: Limits = field(init=False)
    admission: Admission = field(init=False)
    budget: FieldBudget = field(init=False)

    def __post_init__(self) -> None:
        self.limits = self.settings.limits
        self.admission = Admission(self.settings.max_inflight_bytes)
        self.budget = FieldBudget(self.settings.max_fields_per_space)


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
            batch = decode_batch(body, space, hq.limits, prefix=hq.settings.index_prefix)
            del body  # the events hold what is needed; free the bytes while Elasticsearch works
            ingest.writing(len(batch.events))
            await hq.budget.check(space, batch, hq.store.known_fields)
            # `write` empties a list of events once encoded.
            ingest.stored(await hq.store.write(batch.events, space), batch.unindexed)
            hq.budget.record(space, batch.fields)
        finally:
            reservation.release()
    return Response(status_code=202)
