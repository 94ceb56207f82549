"""`PUT /events`: authenticate, read the body, decode, check the budget, store, answer.

`store_events` does it all in a coroutine. `begin_store` does the same steps, up to handing
the events to the store, without one, for the usual small request whose body is read
already (`ingest.answer.answer_events_soon`); `Storing` is what is left once the store answers,
the same for both."""

from __future__ import annotations

from collections.abc import AsyncIterable, Collection, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from logspace.body import Reservation, read_body, read_whole
from logspace.elastic.bulk import WriteOutcome
from logspace.elastic.writer import Write
from logspace.hq import HQ
from logspace.ingest.decode import decode_batch
from logspace.ops.metrics import Ingest
from logspace.spaces.grants import Grant

__all__ = ["ACCEPTED", "INGEST_ROUTES", "Storing", "begin_store", "put_events", "store_events"]


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
    and HQ's lean paths (`app.HQApp`) call this."""
    storing = Storing(hq, Reservation(hq.admission))
    try:
        grant = hq.tokens.grant_for(headers)
        # Counted and logged under its space even when the token may not write there.
        storing.of_space(grant.space, state)
        space = grant.require("write")
        limit = hq.settings.max_body_bytes
        if isinstance(body, bytes):  # read already: no coroutine to read it
            read = read_whole(body, headers, limit, storing.reservation)
        else:
            read = await read_body(
                body, headers, limit, storing.reservation, hq.settings.request_read_seconds
            )
        batch = _decode(hq, read, space)
        del read  # the events hold what is needed; free the bytes while Elasticsearch works
        storing.writing(len(batch.events), batch.unindexed)
        new = hq.budget.known(space, batch)
        if new is None:
            new = await hq.budget.check(space, batch, hq.store.known_fields)
        storing.new = new
        # `write` empties a list of events once encoded.
        outcome = await hq.store.write(batch.events, space)
    except BaseException as error:
        storing.end(error)
        raise
    storing.finish(outcome)


def begin_store(
    hq: HQ, headers: Mapping[str, str], body: bytes, state: dict[str, Any]
) -> tuple[Storing, Write] | None:
    """`store_events`' steps up to the store, without a coroutine, for a request whose body
    is read already and that needs none: its events are with the store when this returns
    (`Write.future` tells when they are stored). None, with nothing done, for any other
    request (a refused token or body, properties the budget has not seen, a write that is
    not the store's usual one): `store_events` then takes it from the start and answers it,
    so every rule stays in one place; that a refused request is decoded twice costs only
    the requests that are refused."""
    grant = _grant(hq, headers)
    if grant is None:
        return None
    space = grant.space
    reservation = Reservation(hq.admission)
    try:
        read = read_whole(body, headers, hq.settings.max_body_bytes, reservation)
        batch = _decode(hq, read, space)
        del read
        new = hq.budget.known(space, batch)
        count, unindexed = len(batch.events), batch.unindexed
        write = None if new is None else hq.store.begin(batch.events, space)
    except Exception:  # answered by `store_events`, which meets it again
        write = None
    if write is None or new is None:
        reservation.release()
        return None
    storing = Storing(hq, reservation)
    storing.of_space(space, state)
    storing.writing(count, unindexed)
    storing.new = new
    return storing, write


def _grant(hq: HQ, headers: Mapping[str, str]) -> Grant | None:
    """The request's grant if it may write; None otherwise (`store_events` says why)."""
    try:
        grant = hq.tokens.grant_for(headers)
    except Exception:
        return None
    return grant if grant.allows("write") else None


def _decode(hq: HQ, read: bytes, space: str) -> Any:
    settings = hq.settings
    return decode_batch(
        read, space, hq.limits, prefix=settings.index_prefix, partition=settings.index_partition
    )


class Storing:
    """A request's batch on its way to the store, from its metrics' start: what it does
    when the store has answered (`finish`), or failed (`end`)."""

    __slots__ = ("_hq", "_unindexed", "ingest", "new", "reservation")

    def __init__(self, hq: HQ, reservation: Reservation) -> None:
        self._hq = hq
        self.reservation = reservation
        self.ingest: Ingest = hq.metrics.ingest().__enter__()
        self._unindexed: Any = None
        # The batch's properties its space did not have, for the budget once stored.
        self.new: Collection[str] = ()

    def of_space(self, space: str, state: dict[str, Any]) -> None:
        """The request's space, for its metrics and (in `state`) its access line."""
        self.ingest.space = state["space"] = space

    def writing(self, count: int, unindexed: Any) -> None:
        """The batch is decoded and goes to the store now."""
        self._unindexed = unindexed
        self.ingest.writing(count)

    def finish(self, outcome: WriteOutcome) -> None:
        """Every event is stored: count them, and let the budget know the new properties."""
        try:
            self.ingest.stored(outcome, self._unindexed)
            self._hq.budget.record(self.ingest.space, self.new)
        except BaseException as error:
            self.end(error)
            raise
        self.end(None)

    def end(self, error: BaseException | None) -> None:
        """The request is done with the store (`error`: why it failed)."""
        try:
            self.reservation.release()
        finally:
            self.ingest.__exit__(None if error is None else type(error), error, None)


# Every stored batch gets the same answer; a response object is only read when it is sent.
ACCEPTED: Final = Response(status_code=202)


# Path, endpoint, methods: ingest's part of `app.API_ROUTES`.
INGEST_ROUTES: Final = (("/events", put_events, ("PUT",)),)
