"""What one connection may take, over real sockets to `logspace serve`'s protocol
(`GuardedProtocol`): no connection, and no half-read body, is kept for ever (408
REQUEST_TIMEOUT), a slow but steady client finishes, a head beyond 64 KiB is refused (431
HEADERS_TOO_LARGE) before it is held in memory, and a client that went away is no error of
HQ's."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from logspace.protocol import HQProtocol
from logspace.testing import MemoryStore, make_event

from .hqserving import serving
from .leanrequests import EVENTS, SETTINGS

pytestmark = pytest.mark.anyio

QUICK = dataclasses.replace(
    SETTINGS, request_read_seconds=0.5, linger_seconds=0.5, max_body_bytes=1_000_000
)
TIMED_OUT = {
    "type": "REQUEST_TIMEOUT",
    "message": "The request did not arrive whole in time: 0.5 s for the headers and the "
    "body's start, and the body at 1024 bytes a second or faster.",
    "parameters": {"request-read-seconds": 0.5, "min-body-bytes-per-second": 1024},
}
# Under the 64 KiB the protocol reads itself; over it, read by the app, through ASGI.
SMALL = orjson.dumps([make_event(long_properties={"n": n}) for n in range(12)])
LARGE = orjson.dumps([make_event(long_properties={"n": n}) for n in range(400)])


def head(length: int | None, chunked: bool = False) -> bytes:
    lines = ["PUT /events HTTP/1.1", "host: hq", "logspace.space-token: development"]
    lines.append("transfer-encoding: chunked" if chunked else f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def connected(store: MemoryStore | None = None, **changes: Any) -> AsyncIterator[Any]:
    async with serving(HQProtocol.configured(QUICK), store, QUICK, **changes) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            yield reader, writer
        finally:
            writer.close()


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], Any]:
    status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[:-2]
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(status_line.split()[1]), headers, orjson.loads(body) if body else None


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether HQ closed the connection within `seconds`. A client still sending when HQ
    closes may see a reset rather than an end of stream (bytes arrived after HQ's last read,
    so the kernel answers them with RST): closed all the same."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def dripping(writer: asyncio.StreamWriter, piece: bytes, every: float) -> None:
    """Send `piece` every `every` seconds, for as long as the connection lasts."""
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(every)


async def sent_at_once(raw: bytes, store: MemoryStore) -> tuple[int, Any, bool]:
    async with connected(store) as (reader, writer):
        writer.write(raw)
        status, _, body = await asyncio.wait_for(answer(reader), 5)
        closed = await closed_within(reader, 3)
    return status, body, closed


async def stalled(
    sent: bytes, drip: bytes | None, store: MemoryStore
) -> tuple[int, dict[bytes, bytes], Any, bool]:
    """Send `sent` and then `drip` every 0.1 s, if any: HQ's answer, and whether it closed the
    connection then (through the app, after reading on for the lingering close, 0.5 s)."""
    async with connected(store) as (reader, writer):
        writer.write(sent)
        dripper = asyncio.create_task(dripping(writer, drip, 0.1)) if drip else None
        status, headers, body = await asyncio.wait_for(answer(reader), 5)
        closed = await closed_within(reader, 3)
        if dripper:
            await dripper
    return status, headers, body, closed


def access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    """(method and path, status, error type) of each access line."""
    return [
        (f"{r.fields['method']} {r.fields['path']}", r.fields["status"], r.fields["error"])
        for r in caplog.records
        if r.name == "logspace.access"
    ]


async def test_a_connection_that_never_sends_a_byte_is_closed_after_the_keep_alive_timeout() -> (
    None
):
    async with connected(timeout_keep_alive=0.5) as (reader, _):
        assert await closed_within(reader, 3)


@pytest.mark.parametrize(
    ("sent", "drip"),
    [
        (b"PUT /ev", None),
        (b"PUT /events HTTP/1.1\r\nhost: hq\r\n", None),
        (b"PUT /events HTTP/1.1\r\n", b"x-slow: loris\r\n"),  # a header line every 0.1 s
    ],
    ids=["request line cut short", "headers cut short", "headers a line at a time"],
)
async def test_headers_that_do_not_arrive_whole_in_time_get_408_and_the_connection_closed(
    caplog: pytest.LogCaptureFixture, sent: bytes, drip: bytes | None
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    status, headers, body, closed = await stalled(sent, drip, MemoryStore())

    assert (status, body) == (408, TIMED_OUT)
    assert headers[b"connection"] == b"close"
    assert closed
    [(_, *logged)] = access_lines(caplog)
    assert logged == [408, "REQUEST_TIMEOUT"]


@pytest.mark.parametrize(
    ("sent", "drip"),
    [
        (head(len(EVENTS)) + EVENTS[:20], None),
        (head(len(LARGE)) + LARGE[:300], None),
        (head(len(LARGE)) + LARGE[:300], b" "),  # a byte every 0.1 s: far under 1 KiB/s
        (head(None, chunked=True) + b"14\r\n" + EVENTS[:20] + b"\r\n", None),
    ],
    ids=["small body", "large body", "large body a byte at a time", "chunked body"],
)
async def test_a_body_that_stalls_gets_408_and_nothing_is_stored(
    caplog: pytest.LogCaptureFixture, sent: bytes, drip: bytes | None
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    store = MemoryStore()
    status, headers, body, closed = await stalled(sent, drip, store)

    assert (status, body) == (408, TIMED_OUT)
    assert headers[b"connection"] == b"close"
    assert closed
    assert store.events == {}
    assert access_lines(caplog) == [("PUT /events", 408, "REQUEST_TIMEOUT")]


@pytest.mark.parametrize(
    ("body", "piece", "every"),
    [(SMALL, 200, 0.1), (LARGE, 20_000, 0.25)],  # 2,000 and 80,000 bytes a second
    ids=["small body", "large body"],
)
async def test_a_slow_but_steady_body_is_stored(body: bytes, piece: int, every: float) -> None:
    store = MemoryStore()
    async with connected(store) as (reader, writer):
        writer.write(head(len(body)))
        for start in range(0, len(body), piece):
            await asyncio.sleep(every)
            writer.write(body[start : start + piece])
        status, _, _ = await asyncio.wait_for(answer(reader), 5)

    # Longer in all than the 0.5 s allowed for the start, but never slower than 1 KiB/s.
    assert len(body) / piece * every > 0.5
    assert status == 202
    assert len(store.events["development"]) == len(orjson.loads(body))


async def test_a_client_gone_before_its_body_was_whole_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    store = MemoryStore()
    async with connected(store) as (_, writer):
        writer.write(head(len(LARGE)) + LARGE[:30_000])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        await asyncio.sleep(0.3)  # HQ notices
        reader2, writer2 = await asyncio.open_connection(*writer.get_extra_info("peername"))
        writer2.write(b"GET /metrics HTTP/1.1\r\nhost: hq\r\n\r\n")
        head_ = await reader2.readuntil(b"\r\n\r\n")
        length = int(head_.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        metrics = (await reader2.readexactly(length)).decode()
        writer2.close()

    assert store.events == {}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert access_lines(caplog)[0] == ("PUT /events", 499, "CLIENT_CLOSED_REQUEST")
    assert (
        'logspace_requests_total{outcome="client_closed_request",space="development"} 1.0'
        in metrics
    )


HEAD_TOO_LARGE = {
    "type": "HEADERS_TOO_LARGE",
    "message": "The request line and headers take more than 65536 bytes.",
    "parameters": {"max-head-bytes": 65536},
}


@pytest.mark.parametrize(
    "raw",
    [
        b"PUT /events HTTP/1.1\r\nx-big: " + b"a" * 200_000,
        b"PUT /events HTTP/1.1\r\n" + b"x-many: header\r\n" * 5000,
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["one endless header", "many headers", "a long path"],
)
async def test_a_head_over_64_kib_gets_431_and_the_connection_closed(
    caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    store = MemoryStore()
    status, body, closed = await sent_at_once(raw, store)

    assert (status, body) == (431, HEAD_TOO_LARGE)
    assert closed
    assert store.events == {}
    [(_, *logged)] = access_lines(caplog)
    assert logged == [431, "HEADERS_TOO_LARGE"]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({f"x-pad-{n}": "p" * 10_000 for n in range(6)}, EVENTS),  # a head of about 60 KiB
        ({}, LARGE),  # 100 KB of body in the same write as its head
    ],
    ids=["a head just under the bound", "a small head with a large body at once"],
)
async def test_heads_within_the_bound_are_read_whatever_follows_them(
    headers: dict[str, str], body: bytes
) -> None:
    store = MemoryStore()
    lines = [*head(len(body)).decode().split("\r\n")[:-2]]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    status, _, closed = await sent_at_once(raw, store)

    assert len(raw) - len(body) < 64 * 1024
    assert status == 202
    assert not closed
    assert len(store.events["development"]) == len(orjson.loads(body))
