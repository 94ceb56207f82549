"""`logspace serve` answers a small `PUT /events` in its HTTP protocol, without the ASGI cycle
(`protocol.HQProtocol`). Over real sockets, against uvicorn's own httptools protocol serving
the same app: the same answers, headers and access lines; keep-alive, pipelining, HTTP/1.0,
graceful shutdown and unexpected errors as uvicorn handles them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from starlette.responses import Response

from logspace.app import HQApp
from logspace.elastic.bulk import WriteOutcome
from logspace.guardedprotocol import response_bytes
from logspace.ingest.endpoint import ACCEPTED
from logspace.leanrequest import lean_request
from logspace.ops.metrics import Ingest
from logspace.protocol import HQProtocol
from logspace.settings import Settings
from logspace.testing import MemoryStore

from .hqserving import Answer, exchange, put, serving
from .leanrequests import CASES as LEAN_CASES
from .leanrequests import EVENTS, SETTINGS, TOKEN
from .proxy import proxy_to

pytestmark = pytest.mark.anyio


def comparable(answer: Answer, given_id: bool) -> Answer:
    status, headers, body = answer
    return (
        status,
        [
            (name, b"<id>" if name == b"x-request-id" and not given_id else value)
            for name, value in headers
            if name != b"date"
        ],
        body,
    )


CASES = [*LEAN_CASES, ("with a query", "/events?pretty", EVENTS, TOKEN)]
# Refused before the body is read: through ASGI the answer closes the connection (lingering
# close), in the protocol the body is already in and the connection stays.
BEFORE_THE_BODY = {"no token", "unknown token", "a token that may not write", "unknown encoding"}


@pytest.mark.parametrize(("case", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_protocol_answers_and_logs_as_uvicorn_with_the_asgi_app(
    caplog: pytest.LogCaptureFixture, case: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    seen: dict[str, tuple[Answer, bool, list[str]]] = {}
    for http in (HQProtocol, "httptools"):
        caplog.clear()
        async with serving(http) as server:
            (answer,), closed = await exchange(server.port, put(path, body, headers))
        lines = [r.getMessage() for r in caplog.records if r.name == "logspace.access"]
        seen[str(http)] = (comparable(answer, "x-request-id" in headers), closed, lines)
    (lean, lean_closed, lean_lines), (asgi, asgi_closed, asgi_lines) = seen.values()

    assert lean_lines == asgi_lines
    assert len(lean_lines) == 1
    assert_alike(case, (lean, lean_closed), (asgi, asgi_closed))


def assert_alike(case: str, lean: tuple[Answer, bool], asgi: tuple[Answer, bool]) -> None:
    """The protocol's answer to `case` (and whether it closed) is that of the ASGI app."""
    (lean_answer, lean_closed), (asgi_answer, asgi_closed) = lean, asgi
    if case in BEFORE_THE_BODY:
        assert (b"connection", b"close") in asgi_answer[1]
        assert asgi_closed
        assert not lean_closed
        status, headers, body = asgi_answer
        asgi_answer = (status, [h for h in headers if h != (b"connection", b"close")], body)
    else:
        assert lean_closed == asgi_closed
    assert lean_answer == asgi_answer


async def test_a_small_put_does_not_go_through_the_asgi_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(*args: Any) -> None:
        raise AssertionError("went through ASGI")

    monkeypatch.setattr(HQApp, "_put_events", refused)
    store = MemoryStore()
    async with serving(HQProtocol, store) as server:
        (answer,), closed = await exchange(server.port, put("/events", EVENTS, TOKEN))

    assert answer[0] == 202
    assert not closed
    assert len(store.events["development"]) == 2


async def test_a_request_in_pieces_is_read_by_the_parser_a_whole_one_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read that brings one whole small PUT skips the parser (`lean_request`); one that
    brings part of a request goes to the parser, which then reads the rest of it."""
    import logspace.protocol

    taken: list[bool] = []

    def counted(data: bytes, limit: int) -> Any:
        request = lean_request(data, limit)
        taken.append(request is not None)
        return request

    monkeypatch.setattr(logspace.protocol, "lean_request", counted)
    store = MemoryStore()
    whole = put("/events", EVENTS, TOKEN)
    async with serving(HQProtocol, store) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        statuses = []
        for pieces in ([whole[:30], whole[30:-5], whole[-5:]], [whole]):
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)  # each piece a read of its own
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split()[1]))
        writer.close()

    assert statuses == [202, 202]
    # The first piece was no whole request; the parser had the next two; then one at once.
    assert taken == [False, True]
    assert len(store.events["development"]) == 4


async def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    store = MemoryStore()
    raw = (
        put("/events", EVENTS, TOKEN)
        + put("/events", b"[{", TOKEN)
        + b"GET /health/live HTTP/1.1\r\nhost: hq\r\n\r\n"
        + put("/api/events", EVENTS, TOKEN)
    )
    async with serving(HQProtocol, store) as server:
        answers, closed = await exchange(server.port, raw, 4)

    assert [status for status, _, _ in answers] == [202, 400, 200, 202]
    assert orjson.loads(answers[1][2])["type"] == "INVALID_JSON"
    assert not closed
    assert len(store.events["development"]) == 4


async def test_an_http_1_0_request_is_answered_then_its_connection_closed() -> None:
    async with serving(HQProtocol) as server:
        (answer,), closed = await exchange(server.port, put("/events", EVENTS, TOKEN, "1.0"))

    assert answer[0] == 202
    assert (b"connection", b"close") in answer[1]
    assert closed


class _Held(MemoryStore):
    """Writes wait until `release` is set."""

    def __init__(self, fail: Callable[[], Exception] | None = None) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def write(self, events: Any, space: str) -> WriteOutcome:
        self.writing.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail()
        return await super().write(events, space)


async def test_a_request_in_progress_at_shutdown_is_answered_and_its_connection_closed() -> None:
    store = _Held()
    async with serving(HQProtocol, store) as server:
        answered = asyncio.create_task(exchange(server.port, put("/events", EVENTS, TOKEN)))
        await store.writing.wait()
        server.should_exit = True  # as on SIGTERM: the server stops taking requests
        await asyncio.sleep(0.3)
        store.release.set()
        (answer,), closed = await answered

    assert answer[0] == 202
    assert (b"connection", b"close") in answer[1]
    assert closed
    assert len(store.events["development"]) == 2


def assert_unexpected_error_answered(lean: tuple[Answer, bool], asgi: tuple[Answer, bool]) -> None:
    """Both answered 500 with the request id (`z`) and closed the connection."""
    assert lean == asgi
    (status, answered, body), closed = lean
    assert status == 500
    assert (b"x-request-id", b"z") in answered
    assert orjson.loads(body)["type"] == "INTERNAL_ERROR"
    assert closed


async def test_an_unexpected_error_answers_500_with_the_request_id_and_closes() -> None:
    seen = []
    for http in (HQProtocol, "httptools"):
        store = _Held(fail=lambda: RuntimeError("a bug"))
        store.release.set()
        async with serving(http, store) as server:
            headers = {**TOKEN, "x-request-id": "z"}
            (answer,), closed = await exchange(server.port, put("/events", EVENTS, headers))
        seen.append((comparable(answer, True), closed))

    assert_unexpected_error_answered(*seen)


async def test_a_connection_idle_for_the_keep_alive_timeout_is_closed_a_busy_one_is_not() -> None:
    async with serving(HQProtocol, timeout_keep_alive=0.5) as server:
        idle_reader, idle = await asyncio.open_connection("127.0.0.1", server.port)
        busy_reader, busy = await asyncio.open_connection("127.0.0.1", server.port)
        idle.write(put("/events", EVENTS, TOKEN))  # one request, then nothing
        statuses = [int((await idle_reader.readuntil(b"\r\n\r\n")).split()[1])]
        for _ in range(6):  # 1.8 s in all, a request every 0.3 s
            busy.write(put("/events", EVENTS, TOKEN))
            head = await busy_reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split()[1]))
            await asyncio.sleep(0.3)
        idle_after = await asyncio.wait_for(idle_reader.read(1), 1)
        busy_after = await busy_reader.read(1)  # and then it idles too
        idle.close()
        busy.close()

    assert statuses == [202] * 7
    assert idle_after == b""  # closed by the server after 0.5 s without a request
    assert busy_after == b""


def test_answers_follow_the_servers_date_and_their_own_headers() -> None:
    """`response_bytes` keeps the head of the last plain response it wrote; uvicorn replaces
    its default headers (the date) each second, and every answer carries the current ones."""

    def server(date: bytes) -> Any:
        headers = [(b"date", date), (b"server", b"uvicorn")]
        return SimpleNamespace(server_state=SimpleNamespace(default_headers=headers))

    first = server(b"Wed, 02 Dec 2026 02:30:00 GMT")
    expected = (
        b"HTTP/1.1 202 Accepted\r\ndate: Wed, 02 Dec 2026 02:30:00 GMT\r\nserver: uvicorn\r\n"
        b"content-length: 0\r\nx-request-id: one\r\n\r\n"
    )
    assert response_bytes(first, ACCEPTED, "one", True) == expected
    assert response_bytes(first, ACCEPTED, "two", False) == expected.replace(
        b"x-request-id: one\r\n", b"x-request-id: two\r\nconnection: close\r\n"
    )
    # The next second: a new list of default headers.
    later = server(b"Wed, 02 Dec 2026 02:30:01 GMT")
    later.server_state.default_headers = list(later.server_state.default_headers)
    assert b"date: Wed, 02 Dec 2026 02:30:01 GMT\r\n" in response_bytes(later, ACCEPTED, "3", True)
    # Another response, then the usual one again: each with its own headers.
    other = Response(b"{}", status_code=202, headers={"x-other": "1"})
    assert b"x-other: 1\r\n" in response_bytes(later, other, "4", True)
    again = response_bytes(later, ACCEPTED, "5", True)
    assert b"x-other" not in again
    assert again.endswith(b"content-length: 0\r\nx-request-id: 5\r\n\r\n")


# -- with Elasticsearch: the usual request is answered from the store's callback -----------


def _with_elasticsearch(settings: Settings) -> Settings:
    """The lean cases' settings (tokens, body limit), storing in the test's Elasticsearch."""
    return replace(
        settings, space_tokens=SETTINGS.space_tokens, max_body_bytes=SETTINGS.max_body_bytes
    )


async def test_with_elasticsearch_the_protocol_answers_and_logs_as_uvicorn_with_the_asgi_app(
    caplog: pytest.LogCaptureFixture, settings: Settings, stored: Any
) -> None:
    """Every kind of answer, again with the real store: a batch stored at the first go is
    answered from a callback, without a task; refusals take `answer_events`' own way."""
    caplog.set_level(logging.INFO, logger="logspace.access")
    seen = []
    for http in (HQProtocol, "httptools"):
        async with serving(
            http, settings=_with_elasticsearch(settings), elasticsearch=True
        ) as server:
            # The properties are known after this one: the next batches need no budget check.
            await exchange(server.port, put("/events", EVENTS, TOKEN))
            caplog.clear()
            answers = []
            for _, path, body, headers in CASES:
                (answer,), closed = await exchange(server.port, put(path, body, headers))
                answers.append((comparable(answer, "x-request-id" in headers), closed))
        lines = [r.getMessage() for r in caplog.records if r.name == "logspace.access"]
        seen.append((answers, lines))
    (lean, lean_lines), (asgi, asgi_lines) = seen

    assert lean_lines == asgi_lines
    assert len(lean_lines) == len(CASES)
    for (case, *_), lean_answer, asgi_answer in zip(CASES, lean, asgi, strict=True):
        assert_alike(case, lean_answer, asgi_answer)
    assert [answer[0] for answer, _ in lean[:3]] == [202, 202, 202]
    assert {e["id"] for e in stored()} == {e["id"] for e in orjson.loads(EVENTS)}


async def test_a_usual_request_waits_for_elasticsearch_without_a_task(settings: Settings) -> None:
    """While its bulk is in flight, the request holds no task of the server's: it is answered
    from the store's callback when Elasticsearch has answered."""
    with proxy_to(settings.es_url) as proxy:
        changed = replace(_with_elasticsearch(settings), es_url=proxy.url)
        async with serving(HQProtocol, settings=changed, elasticsearch=True) as server:
            await exchange(server.port, put("/events", EVENTS, TOKEN))  # the properties known
            proxy.delay = 1.0
            answering = asyncio.create_task(exchange(server.port, put("/events", EVENTS, TOKEN)))
            hq = server.config.app.state.hq
            while hq.metrics.tally.requests_in_flight == 0:  # noqa: ASYNC110 - HQ's own count
                await asyncio.sleep(0.01)
            tasks_while_waiting = len(server.server_state.tasks)
            (answer,), _ = await answering

    assert tasks_while_waiting == 0
    assert answer[0] == 202


async def test_an_unexpected_error_after_elasticsearch_answered_gives_500_as_before(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """An error of HQ's own once the events are stored (here, in the metrics) is answered as
    any unexpected error: 500 with the request id, the connection closed, the error logged."""

    def broken(self: Ingest, outcome: WriteOutcome, unindexed: Any) -> None:
        raise RuntimeError("a bug")

    seen = []
    for http in (HQProtocol, "httptools"):
        async with serving(
            http, settings=_with_elasticsearch(settings), elasticsearch=True
        ) as server:
            await exchange(server.port, put("/events", EVENTS, TOKEN))  # the properties known
            with monkeypatch.context() as patch:
                patch.setattr(Ingest, "stored", broken)
                headers = {**TOKEN, "x-request-id": "z"}
                (answer,), closed = await exchange(server.port, put("/events", EVENTS, headers))
        seen.append((comparable(answer, True), closed))

    assert_unexpected_error_answered(*seen)
