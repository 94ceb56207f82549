"""The answer to a `PUT /events` that HQ's lean ways take (`app.HQApp` for any ASGI
server, `protocol.HQProtocol` for its own): stored by `store_events`, answered and logged
as the routed path answers and logs (`RequestLog`'s request id and access line, the error
handlers); tests/test_lean_path.py and tests/test_protocol.py hold them to it.

`answer_events` is a coroutine. `answer_events_soon` answers the usual request, whose body
is read already and whose events are stored at the first go, without one: a fleet's
thousands of small requests a second each cost a task and the coroutines it resumes once
Elasticsearch has answered, several microseconds when the processor comes back to them
cold (bench/optimisations.md). Every other request, or turn, goes `answer_events`' way."""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from logspace.elastic.writer import Write
from logspace.errors import CLIENT_CLOSED_STATUS, CLIENT_CLOSED_TYPE, LogspaceError
from logspace.handlers import answer_error, unexpected
from logspace.hq import HQ
from logspace.ingest.endpoint import ACCEPTED, Storing, begin_store, store_events
from logspace.ops.accesslog import log_access, request_id_from
from logspace.ops.logs import REQUEST_ID, REQUEST_ID_HEADER

__all__ = ["Exchange", "Unanswered", "answer_events", "answer_events_soon", "request_headers"]

# Runs a coroutine as a task whose errors the server handles (`HQProtocol._spawn`).
Spawn = Callable[[Coroutine[Any, Any, None]], None]


async def answer_events(
    hq: HQ,
    scope: Scope,
    body: AsyncIterable[bytes] | bytes,
    respond: Callable[[Response, str], Awaitable[None] | None],
    headers: dict[str, str] | None = None,
    started: float | None = None,
) -> None:
    """Store the events of a `PUT /events`, answer through `respond` (the response, and
    the request id to add as a header; awaited if it returns an awaitable), write the
    access line. HQ's two lean ways in, the ASGI one (`app.HQApp`) and the server's
    (`protocol.HQProtocol`), share this, so both answer and log as the routed path does:
    `RequestLog`'s request id and access line, `store_events`, the error handlers. An
    unexpected error is raised once its access line is written, as `Unanswered` (with the
    500 to send) if no answer had begun. `headers`: the scope's by name (`request_headers`), when
    the caller read them so already; `started`: when the request began, if earlier."""
    if headers is None:
        headers = request_headers(scope)
    exchange = Exchange(scope, headers, respond, started)
    await _answer_stored(exchange, store_events(hq, headers, body, exchange.state))


def answer_events_soon(
    hq: HQ,
    scope: Scope,
    body: bytes,
    respond: Callable[[Response, str], None],
    headers: dict[str, str] | None,
    spawn: Spawn,
) -> None:
    """`answer_events` for a body read already, answered (by `respond`, which writes at
    once) without a task when it is the usual request: its steps are run now, and what
    follows the store's answer runs in a callback. A fleet's small request costs so a
    few microseconds less than resumed coroutines cost (bench/optimisations.md). Any
    other request, or any other turn it takes, goes on in `answer_events`' own steps, in
    a coroutine given to `spawn` to run as a task (whose error is the server's to handle,
    as `answer_events`' own)."""
    if headers is None:
        headers = request_headers(scope)
    # The request's own context, as a task would have: its request id for its log lines.
    context = contextvars.copy_context()
    context.run(_answer_soon, hq, context, scope, body, respond, headers, spawn)


def _answer_soon(
    hq: HQ,
    context: contextvars.Context,
    scope: Scope,
    body: bytes,
    respond: Callable[[Response, str], None],
    headers: dict[str, str],
    spawn: Spawn,
) -> None:
    # Its request id set first, as `answer_events` does: for what is logged on the way.
    exchange = Exchange(scope, headers, respond, time.perf_counter())
    begun = begin_store(hq, headers, body, exchange.state)
    if begun is None:
        spawn(answer_events(hq, scope, body, respond, headers, exchange.started))
        return
    storing, write = begun
    assert write.future is not None  # `Store.begin` makes the first go
    write.future.add_done_callback(
        functools.partial(_stored_soon, exchange, storing, write, spawn), context=context
    )


def _stored_soon(
    exchange: Exchange,
    storing: Storing,
    write: Write,
    spawn: Spawn,
    _future: object,
) -> None:
    outcome = write.settled()
    if outcome is None:  # anything but every event stored at the first go
        spawn(_answer_stored(exchange, _rest_of(storing, write)))
        return
    try:
        storing.finish(outcome)
    except Exception as error:
        spawn(_answer_stored(exchange, _raising(error)))
        return
    exchange.send_soon(ACCEPTED, spawn)


async def _answer_stored(exchange: Exchange, storing: Awaitable[None]) -> None:
    """Answer once `storing` (the request's `store_events`, or the rest of it) is done."""
    try:
        await storing
    except Exception as error:
        await exchange.failed(error)
        return
    except BaseException:  # cancelled: still its access line, as `RequestLog` writes
        exchange.log(500)
        raise
    await exchange.send(ACCEPTED)


class Exchange:
    """A `PUT /events` taken by `HQApp`'s lean ways: how to answer it, and its access line
    (`RequestLog`'s, and the error handlers' answers)."""

    __slots__ = ("request_id", "respond", "scope", "started", "state")

    def __init__(
        self,
        scope: Scope,
        headers: dict[str, str],
        respond: Callable[[Response, str], Awaitable[None] | None],
        started: float | None,
    ) -> None:
        self.scope = scope
        self.respond = respond
        self.request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        REQUEST_ID.set(self.request_id)
        self.state: dict[str, Any] = scope.setdefault("state", {})
        self.started = time.perf_counter() if started is None else started

    def log(self, status: int) -> None:
        log_access(self.scope, status, self.started, self.state)

    async def send(self, response: Response) -> None:
        """Answer with `response`, then write the access line; if the answer fails, write
        it, and raise."""
        try:
            sending = self.respond(response, self.request_id)
            if sending is not None:  # the server's protocol writes at once (no coroutine)
                await sending
        except BaseException:
            self.log(response.status_code)
            raise
        self.log(response.status_code)

    def send_soon(self, response: Response, spawn: Spawn) -> None:
        """`send` through a `respond` that writes at once; what it raises goes to a task
        (`spawn`), as it would from `send`."""
        try:
            self.respond(response, self.request_id)
        except Exception as error:
            self.log(response.status_code)
            spawn(_raising(error))
            return
        self.log(response.status_code)

    async def failed(self, error: Exception) -> None:
        """Answer a request whose store failed with `error`: a `LogspaceError` with its own
        answer, a client gone with none; anything else is raised, once its access line is
        written, as `Unanswered` with the 500 to send (as `ServerErrorMiddleware`)."""
        if isinstance(error, ClientDisconnect):
            self.state["error"] = CLIENT_CLOSED_TYPE
            self.log(CLIENT_CLOSED_STATUS)
            return
        if isinstance(error, LogspaceError):
            try:
                response = answer_error(Request(self.scope), error)
            except Exception as failure:
                error = failure
            else:
                await self.send(response)
                return
        self.state.setdefault("error", "INTERNAL_ERROR")
        self.log(500)
        raise Unanswered(await unexpected(Request(self.scope), error), error) from error


async def _rest_of(storing: Storing, write: Write) -> None:
    """The rest of `store_events` after a first go that did not settle the write."""
    try:
        outcome = await write.rest()
    except BaseException as error:
        storing.end(error)
        raise
    storing.finish(outcome)


async def _raising(error: Exception) -> None:
    """A coroutine that raises `error`: an error found in a callback, handed to a task so
    that whoever handles the task's errors handles it."""
    raise error


class Unanswered(Exception):
    """An unexpected error in `answer_events` before any answer: the 500 to send, and the
    error, which goes on to the server."""

    def __init__(self, response: Response, error: Exception) -> None:
        super().__init__(str(error))
        self.response = response
        self.error = error


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by name, the first of each, as Starlette's `Headers` reads
    them (names in the scope are lower case), in a plain dict: cheaper to look up, and a
    name that is absent costs no `KeyError`."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }
