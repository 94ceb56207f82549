"""HTTP request agents: ASGI and WSGI middleware sending one event per request.

Each event has type `http/request` and the original CXF agent's property names:

    string   protocol, domain, path, query_string, http_method, request_id, ip_address, location
    integer  port, response_code
    long     duration (milliseconds, as the original), duration_us (microseconds)

`query_string`, `request_id` (from `X-Request-ID` or `Request-ID`), `ip_address` and `location`
(the response's `Location`) are left out when there is none. The timestamp is when the request
arrived; `duration` runs until the response is complete. A request that fails with an exception
is reported with `response_code` 500. Plain ASGI and WSGI: no framework is imported.

This runs in every request of the application, so it builds the event as a plain dict (what
`EventBuilder` would build, without checking each value on the way: the sink checks the whole
event with HQ's rules) and hands it to the sink, which only buffers it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from types import TracebackType
from typing import Any

from .builder import new_event, now_instant
from .sink import Sink

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

log = logging.getLogger("logspace.agent")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _RequestAgent:
    def __init__(self, sink: Sink, agent_id: str, event_type: str) -> None:
        self.sink = sink
        self.agent_id = agent_id
        self.event_type = event_type

    def _emit(
        self,
        *,
        arrived: str,
        seconds: float,
        protocol: str,
        host: str | None,
        server: tuple[str, int | None] | None,
        path: str,
        query_string: str,
        method: str,
        request_id: str | None,
        ip_address: str | None,
        status: int,
        location: str | None,
    ) -> None:
        try:
            domain, port = _host_and_port(host, server, protocol)
            strings = {"protocol": protocol, "path": path, "http_method": method}
            # In the order EventBuilder would have set them.
            if domain:
                strings["domain"] = domain
            if query_string:
                strings["query_string"] = query_string
            if request_id:
                strings["request_id"] = request_id
            if ip_address:
                strings["ip_address"] = ip_address
            if location:
                strings["location"] = location
            integers = {"response_code": status}
            if port is not None:
                integers["port"] = port
            microseconds = int(seconds * 1_000_000)
            event = new_event(self.event_type, self.agent_id, timestamp=arrived)
            event["string-properties"] = strings
            event["integer-properties"] = integers
            event["long-properties"] = {
                "duration": microseconds // 1000,
                "duration_us": microseconds,
            }
            self.sink.send(event)
        except Exception:
            # Telemetry must never break the request it describes.
            log.exception("could not record the request to %s", path)


def _host_and_port(
    host: str | None, server: tuple[str, int | None] | None, protocol: str
) -> tuple[str | None, int | None]:
    default = server[1] if server and server[1] is not None else _DEFAULT_PORTS.get(protocol)
    if host:
        name, colon, port = host.rpartition(":")
        # "[::1]:8000" and "example.com:8000" carry a port; "[::1]" and "example.com" do not.
        if (
            colon
            and port.isascii()
            and port.isdigit()
            and (not name.startswith("[") or name.endswith("]"))
        ):
            return name, int(port)
        return host, default
    return (server[0] if server else None), default


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
        arrived = now_instant()
        started = time.perf_counter()
        status = 500
        location: str | None = None

        async def watching_send(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"location":
                        location = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            host = request_id = other_request_id = None
            for name, value in scope.get("headers", ()):
                name = name.lower()
                if name == b"host":
                    host = value.decode("latin-1")
                elif name == b"x-request-id":
                    request_id = value.decode("latin-1")
                elif name == b"request-id":
                    other_request_id = value.decode("latin-1")
            client = scope.get("client")
            server = scope.get("server")
            self._emit(
                arrived=arrived,
                seconds=time.perf_counter() - started,
                protocol=scope.get("scheme", "http"),
                host=host,
                server=(server[0], server[1]) if server else None,
                # The ASGI spec has `path` include any `root_path` the app is mounted at.
                path=scope["path"],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                method=scope["method"],
                request_id=request_id or other_request_id,
                ip_address=client[0] if client else None,
                status=status,
                location=location,
            )


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
        arrived = now_instant()
        started = time.perf_counter()
        answer: dict[str, Any] = {"status": 500, "location": None}

        def watching_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            answer["status"] = int(status.split(" ", 1)[0])
            for name, value in headers:
                if name.lower() == "location":
                    answer["location"] = value
            return start_response(status, headers, exc_info)

        def finished() -> None:
            self._emit(
                arrived=arrived,
                seconds=time.perf_counter() - started,
                protocol=environ.get("wsgi.url_scheme", "http"),
                host=environ.get("HTTP_HOST"),
                server=_wsgi_server(environ),
                path=_wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
                query_string=environ.get("QUERY_STRING", ""),
                method=environ.get("REQUEST_METHOD", "GET"),
                request_id=environ.get("HTTP_X_REQUEST_ID") or environ.get("HTTP_REQUEST_ID"),
                ip_address=environ.get("REMOTE_ADDR"),
                status=answer["status"],
                location=answer["location"],
            )

        try:
            result = self.app(environ, watching_start_response)
        except BaseException:
            finished()
            raise
        return _Closing(result, finished)


def _wsgi_server(environ: dict[str, Any]) -> tuple[str, int | None] | None:
    name = environ.get("SERVER_NAME")
    if not name:
        return None
    port = str(environ.get("SERVER_PORT", ""))
    return name, int(port) if port.isascii() and port.isdigit() else None


def _wsgi_text(value: str) -> str:
    # WSGI hands over the raw bytes of the path as latin-1; most clients sent UTF-8.
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


class _Closing:
    """The app's response body, reporting the request when the server closes it (PEP 3333)."""

    def __init__(self, result: Iterable[bytes], finished: Callable[[], None]) -> None:
        self._result = result
        self._finished = finished

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._finished()
