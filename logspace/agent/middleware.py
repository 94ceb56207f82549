"""HTTP request agents: ASGI and WSGI middleware sending one event per request.

Each event has type `http/request` and the original CXF agent's property names:

    string   protocol, domain, path, query_string, http_method, request_id, ip_address, location
    integer  port, response_code
    long     duration (milliseconds, as the original), duration_us (microseconds)

`query_string`, `request_id` (from `X-Request-ID` or `Request-ID`), `ip_address` and `location`
(the response's `Location`) are left out when there is none. The timestamp is when the request
arrived; `duration` runs until the response is complete. A request that fails with an exception
is reported with `response_code` 500. Plain ASGI and WSGI: no framework is imported.

This runs in every request of the application, so the request only notes the values the event
is made of and hands them to the sink as a draft (`draft.py`): a sender's thread builds the
event (what `EventBuilder` builds from those values), encodes and checks it with many others.
A sink without drafts gets the event built at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from types import TracebackType
from typing import Any

from .draft import DRAFT_MARGIN, drafting
from .requestevent import asgi_events, wsgi_events
from .sink import Sink

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

log = logging.getLogger("logspace.agent")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The request headers an event needs, lowercase, and their places in the middleware's list.
_REQUEST_HEADERS = {b"host": 0, b"x-request-id": 1, b"request-id": 2}
_time_ns = time.time_ns
_perf_counter_ns = time.perf_counter_ns

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _RequestAgent:
    def __init__(self, sink: Sink, agent_id: str, event_type: str) -> None:
        self.sink = sink
        self.agent_id = agent_id
        self.event_type = event_type
        self._send_draft = drafting(sink)


class ASGIMiddleware(_RequestAgent):
    """`app = ASGIMiddleware(app, sender)`: one `http/request` event per HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        sink: Sink,
        *,
        agent_id: str = "http/asgi",
        event_type: str = "http/request",
    ) -> None:
        super().__init__(sink, agent_id, event_type)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = _time_ns()
        started = _perf_counter_ns()
        answer: list[Any] = [500, None]  # the status, the `Location`

        # A plain function returning `send`'s awaitable: no coroutine of ours per message.
        def watching_send(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
                for name, value in message.get("headers", ()):
                    # Names are lowercase as a rule (ASGI asks for it): lowered only if not.
                    if name == b"location" or (not name.islower() and name.lower() == b"location"):
                        answer[1] = value
            return send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            elapsed = _perf_counter_ns() - started
            path = scope["path"]
            query_string = scope.get("query_string", b"")
            # The three headers the event needs, not the list: a draft must not keep every
            # header (cookies and all) alive beyond its estimated size. The last of each
            # name wins.
            wanted: list[Any] = [None, None, None]  # host, x-request-id, request-id
            for name, value in scope.get("headers", ()):
                which = _REQUEST_HEADERS.get(name)
                if which is None:
                    if name.islower():  # lowercase, as a rule, and none of ours
                        continue
                    which = _REQUEST_HEADERS.get(name.lower())
                    if which is None:
                        continue
                wanted[which] = value
            host, request_id, other_request_id = wanted
            try:
                self._send_draft(
                    asgi_events,
                    (
                        self.event_type,
                        self.agent_id,
                        arrived,
                        elapsed,
                        scope.get("scheme", "http"),
                        scope.get("server"),
                        path,
                        query_string,
                        scope["method"],
                        scope.get("client"),
                        host,
                        request_id or other_request_id,
                        answer[0],
                        answer[1],
                    ),
                    DRAFT_MARGIN + len(path) + len(query_string),
                )
            except Exception:
                # Telemetry must never break the request it describes.
                log.exception("could not record the request to %s", path)


class WSGIMiddleware(_RequestAgent):
    """`app = WSGIMiddleware(app, sender)`: one `http/request` event per HTTP request."""

    def __init__(
        self,
        app: WSGIApp,
        sink: Sink,
        *,
        agent_id: str = "http/wsgi",
        event_type: str = "http/request",
    ) -> None:
        super().__init__(sink, agent_id, event_type)
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        closing = _Closing(self, environ, time.time_ns(), time.perf_counter_ns())

        def watching_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            closing.status = status
            for name, value in headers:
                if name.lower() == "location":
                    closing.location = value
            return start_response(status, headers, exc_info)

        try:
            closing.result = self.app(environ, watching_start_response)
        except BaseException:
            closing.finished()
            raise
        return closing


class _Closing:
    """The app's response body, reporting the request when the server closes it (PEP 3333)."""

    __slots__ = ("agent", "arrived", "environ", "location", "result", "started", "status")

    def __init__(
        self, agent: WSGIMiddleware, environ: dict[str, Any], arrived: int, started: int
    ) -> None:
        self.agent = agent
        self.environ = environ
        self.arrived = arrived
        self.started = started
        self.status = "500"
        self.location: str | None = None
        self.result: Iterable[bytes] = ()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.finished()

    def finished(self) -> None:
        elapsed = time.perf_counter_ns() - self.started
        agent, environ = self.agent, self.environ
        get = environ.get
        path_info = get("PATH_INFO", "")
        query_string = get("QUERY_STRING", "")
        try:
            agent._send_draft(
                wsgi_events,
                (
                    agent.event_type,
                    agent.agent_id,
                    self.arrived,
                    elapsed,
                    get("wsgi.url_scheme", "http"),
                    get("HTTP_HOST"),
                    get("SERVER_NAME"),
                    get("SERVER_PORT", ""),
                    get("SCRIPT_NAME", ""),
                    path_info,
                    query_string,
                    get("REQUEST_METHOD", "GET"),
                    get("HTTP_X_REQUEST_ID") or get("HTTP_REQUEST_ID"),
                    get("REMOTE_ADDR"),
                    self.status,
                    self.location,
                ),
                DRAFT_MARGIN + len(path_info) + len(query_string),
            )
        except Exception:
            # Telemetry must never break the request it describes.
            log.exception("could not record the request to %s", path_info)
