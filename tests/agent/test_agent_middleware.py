"""The HTTP request agents in a real Starlette app and a real WSGI app."""

from __future__ import annotations

import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from logspace.agent import ASGIMiddleware, AsyncSender, EventBuilder, MemorySink, WSGIMiddleware
from logspace.settings import Settings

from ..agent_support import Serve, agent_config, serve_hq

__all__ = ["serve_hq"]  # a fixture, from tests/agent_support.py


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


async def moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/items/2", status_code=303)


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


def starlette_app(sink: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{id}", item),
            Route("/moved", moved, methods=["POST"]),
            Route("/boom", boom),
        ],
        middleware=[Middleware(ASGIMiddleware, sink=sink)],
    )


def only(sink: MemorySink) -> dict[str, Any]:
    [event] = sink.events
    return event


@pytest.mark.anyio
async def test_asgi_one_event_per_request_with_the_cxf_property_names() -> None:
    sink = MemorySink()
    transport = httpx.ASGITransport(app=starlette_app(sink), client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test:8080") as client:
        response = await client.get("/items/7?full=1", headers={"X-Request-ID": "req-1"})

    assert response.status_code == 200
    event = only(sink)
    assert (event["type"], event["agent-id"]) == ("http/request", "http/asgi")
    assert event["string-properties"] == {
        "protocol": "http",
        "domain": "shop.test",
        "path": "/items/7",
        "query_string": "full=1",
        "http_method": "GET",
        "request_id": "req-1",
        "ip_address": "10.1.2.3",
    }
    assert event["integer-properties"] == {"response_code": 200, "port": 8080}
    assert event["long-properties"]["duration"] >= 0
    assert event["long-properties"]["duration_us"] >= event["long-properties"]["duration"]


@pytest.mark.anyio
async def test_asgi_reports_redirects_with_their_location_and_failures_as_500() -> None:
    sink = MemorySink()
    transport = httpx.ASGITransport(app=starlette_app(sink), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.test") as client:
        moved = await client.post("/moved")
        failed = await client.get("/boom")

    assert (moved.status_code, failed.status_code) == (303, 500)
    redirect, failure = sink.events
    assert redirect["string-properties"]["location"] == "/items/2"
    assert redirect["string-properties"]["http_method"] == "POST"
    assert redirect["integer-properties"] == {"response_code": 303, "port": 443}
    assert failure["integer-properties"]["response_code"] == 500
    assert failure["string-properties"]["path"] == "/boom"


@pytest.mark.anyio
async def test_asgi_lets_lifespan_and_websocket_scopes_pass_untouched() -> None:
    sink = MemorySink()
    app = starlette_app(sink)
    async with app.router.lifespan_context(app):
        pass
    assert sink.events == []


@pytest.mark.anyio
async def test_a_broken_sink_never_breaks_the_request() -> None:
    class Broken:
        def send(self, event: Any) -> None:
            raise OSError("disk full")

    transport = httpx.ASGITransport(app=starlette_app(Broken()))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        assert (await client.get("/items/1")).status_code == 200


@pytest.mark.anyio
async def test_request_events_from_starlette_reach_elasticsearch(
    serve_hq: Serve, stored: Any, settings: Settings, tmp_path: Path
) -> None:
    async with serve_hq() as hq, AsyncSender(agent_config(tmp_path), transport=hq) as sender:
        transport = httpx.ASGITransport(app=starlette_app(sender))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            for n in range(3):
                await client.get(f"/items/{n}")
        assert await sender.flush(30)

    events = stored({"term": {"type": "http/request"}})
    assert sorted(e["string-properties"]["path"] for e in events) == [
        "/items/0",
        "/items/1",
        "/items/2",
    ]
    assert {e["integer-properties"]["response_code"] for e in events} == {200}


StartResponse = Callable[..., Any]


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/moved":
        start_response("302 Found", [("Location", "/here"), ("Content-Length", "0")])
        return [b""]
    body = "héllo".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Closing:
    """A response body that notes whether the server closed it."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"streamed"

    def close(self) -> None:
        self.closed = True


def test_wsgi_one_event_per_request_in_a_real_wsgi_server() -> None:
    """wsgiref serves the app over a real socket, as any WSGI server would."""
    sink = MemorySink()
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, WSGIMiddleware(wsgi_app, sink), handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            ok = client.get("/caf%C3%A9?x=1", headers={"Request-ID": "r-9"})
            moved = client.get("/moved")
    finally:
        server.shutdown()
        server.server_close()

    assert (ok.status_code, moved.status_code) == (200, 302)
    first, second = sink.events
    assert (first["type"], first["agent-id"]) == ("http/request", "http/wsgi")
    assert first["string-properties"] == {
        "protocol": "http",
        "domain": "127.0.0.1",
        "path": "/café",
        "query_string": "x=1",
        "http_method": "GET",
        "request_id": "r-9",
        "ip_address": "127.0.0.1",
    }
    assert first["integer-properties"] == {"response_code": 200, "port": port}
    assert second["string-properties"]["location"] == "/here"
    assert second["integer-properties"]["response_code"] == 302


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgi_reports_when_the_server_closes_the_body_and_failures_as_500() -> None:
    sink = MemorySink()
    body = Closing()

    def streaming(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return body

    with httpx.Client(transport=httpx.WSGITransport(app=WSGIMiddleware(streaming, sink))) as c:
        assert c.get("http://app.test/stream").text == "streamed"
    assert body.closed
    assert only(sink)["integer-properties"]["response_code"] == 200

    failing = MemorySink()
    with (
        httpx.Client(transport=httpx.WSGITransport(app=WSGIMiddleware(wsgi_app, failing))) as c,
        pytest.raises(RuntimeError, match="boom"),
    ):
        c.get("http://app.test/boom")
    assert only(failing)["integer-properties"]["response_code"] == 500


def built_like_before(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBuilder builds it from the same values, set in the order the agent
    documents; the middleware builds its dict directly, and must build exactly this."""
    strings, integers = event["string-properties"], event["integer-properties"]
    longs = event["long-properties"]
    builder = (
        EventBuilder(event["type"], event["agent-id"], id=event["id"], timestamp=event["timestamp"])
        .string("protocol", strings["protocol"])
        .string("path", strings["path"])
        .string("http_method", strings["http_method"])
        .integer("response_code", integers["response_code"])
        .long("duration", longs["duration"])
        .long("duration_us", longs["duration_us"])
    )
    for name in ("domain", "query_string", "request_id", "ip_address", "location"):
        if name in strings:
            builder.string(name, strings[name])
    if "port" in integers:
        builder.integer("port", integers["port"])
    return builder.build()


@pytest.mark.anyio
async def test_the_request_event_is_the_one_event_builder_builds() -> None:
    sink = MemorySink()
    transport = httpx.ASGITransport(app=starlette_app(sink), client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test:8080") as client:
        await client.post("/moved?x=1", headers={"Request-ID": "r-1"})

    event = only(sink)
    # The same members in the same order, nested ones too: the same bytes on the wire.
    assert orjson.dumps(event) == orjson.dumps(built_like_before(event))
    assert event["long-properties"]["duration"] == event["long-properties"]["duration_us"] // 1000


@pytest.mark.anyio
async def test_asgi_header_names_count_whatever_their_case_and_the_last_of_a_name_wins() -> None:
    """ASGI servers should lowercase header names; one that does not still gets its events."""
    sink = MemorySink()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"Content-Length", b"0"), (b"LOCATION", b"/first"), (b"location", b"/last")]
        await send({"type": "http.response.start", "status": 301, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/old",
        "query_string": b"",
        "headers": [
            (b"Host", b"shop.test:81"),
            (b"X-Request-Id", b"first"),
            (b"x-request-id", b"second"),
            (b"Request-ID", b"other"),
            (b"1", b"not a name of ours"),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    await ASGIMiddleware(app, sink)(scope, receive, send)

    strings = only(sink)["string-properties"]
    assert strings["domain"] == "shop.test"
    assert only(sink)["integer-properties"] == {"response_code": 301, "port": 81}
    assert strings["request_id"] == "second"
    assert strings["location"] == "/last"
