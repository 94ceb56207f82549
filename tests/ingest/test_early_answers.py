"""Answers HQ gives before it has read a request's body reach clients that write the whole body
before they read (Python's urllib, Java's HttpURLConnection, Apache HttpClient): HQ reads and
discards the rest of the body, within bounds, before it closes. A client that sends
`Expect: 100-continue` gets the refusal instead of `100 Continue` and need not send the body."""

from __future__ import annotations

import asyncio
import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from logspace.lingering import LingeringClose

from ..processes import hq_environ, start_hq

LIMIT = 4_000_000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@pytest.fixture(scope="module")
def hq_url(es_url: str) -> Iterator[str]:
    """A real `logspace serve` (uvicorn with httptools, as deployed) with a 4 MB body limit
    and in-flight budget."""
    env = hq_environ(
        LOGSPACE_ES_URL=es_url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX="lstest-early-answers",
        LOGSPACE_INSTALL_TEMPLATES="false",
        LOGSPACE_MAX_BODY_BYTES=str(LIMIT),
        LOGSPACE_MAX_INFLIGHT_BYTES=str(LIMIT),
    )
    url, process = start_hq(env)
    yield url
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def head(content_length: int | None, *extra: str, token: str = "development") -> bytes:
    """A PUT /events head as urllib writes it: `Connection: close`, then the whole body."""
    lines = [
        "PUT /events HTTP/1.1",
        "Host: hq",
        "Content-Type: application/json",
        f"logspace.space-token: {token}",
        "Connection: close",
        *extra,
    ]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> Answer:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def send_all_then_read(url: str, request_head: bytes, body: bytes) -> Answer:
    """Write head and body completely, only then read the answer."""
    with connect(url) as sock:
        sock.sendall(request_head + body)
        return read_answer(sock)


def batch_of(size: int) -> bytes:
    """A valid, empty batch of exactly `size` bytes: `[`, spaces, `]`."""
    return b"[" + b" " * (size - 2) + b"]"


def test_a_body_declared_too_large_gets_its_413(hq_url: str) -> None:
    body = batch_of(4 * LIMIT)

    answer = send_all_then_read(hq_url, head(len(body)), body)

    assert answer.status == 413
    assert answer.json()["type"] == "REQUEST_TOO_LARGE"
    assert answer.json()["parameters"] == {"max-body-bytes": LIMIT}


def test_a_chunked_body_that_grows_too_large_gets_its_413(hq_url: str) -> None:
    chunk = b" " * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(256)) + b"0\r\n\r\n"

    answer = send_all_then_read(hq_url, head(None, "Transfer-Encoding: chunked"), body)

    assert answer.status == 413
    assert answer.json()["type"] == "REQUEST_TOO_LARGE"


def test_a_request_over_the_in_flight_budget_gets_its_503_and_retry_after(hq_url: str) -> None:
    """One request holds half the budget (half its body sent); the next, sent whole, reads its
    503 OVERLOADED."""
    body = batch_of(LIMIT)
    with connect(hq_url) as holder:
        holder.sendall(head(len(body)) + body[: LIMIT // 2])
        deadline = time.monotonic() + 20
        while True:  # until HQ has taken the holder's half
            answer = send_all_then_read(hq_url, head(len(body)), body)
            if answer.status != 202 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        holder.sendall(body[LIMIT // 2 :])
        held = read_answer(holder)

    assert answer.status == 503
    assert answer.json()["type"] == "OVERLOADED"
    assert answer.headers["retry-after"] == "1"
    assert held.status == 202


def test_a_token_refused_before_the_body_is_read_is_answered_too(hq_url: str) -> None:
    body = batch_of(2 * LIMIT)

    answer = send_all_then_read(hq_url, head(len(body), token="unknown"), body)

    assert answer.status == 403
    assert answer.json()["type"] == "INVALID_SPACE_TOKEN"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything HQ sends until it closes the connection, interim answers included."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_status_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        line += sock.recv(1)
    return line


def test_expect_100_continue_gets_the_refusal_instead_of_100(hq_url: str) -> None:
    """Refused by its declared length or its token: the client need not send the body."""
    with connect(hq_url) as sock:
        sock.sendall(head(4 * LIMIT, "Expect: 100-continue"))
        too_large = read_until_closed(sock)
    with connect(hq_url) as sock:
        sock.sendall(head(LIMIT // 2, "Expect: 100-continue", token="unknown"))
        unknown_token = read_until_closed(sock)

    assert too_large.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nconnection: close\r\n" in too_large
    assert unknown_token.startswith(b"HTTP/1.1 403 ")


def test_expect_100_continue_over_the_in_flight_budget_gets_503_instead_of_100(
    hq_url: str,
) -> None:
    body = batch_of(LIMIT)
    with connect(hq_url) as holder:
        holder.sendall(head(len(body)) + body[: LIMIT // 2])
        deadline = time.monotonic() + 20
        while True:
            with connect(hq_url) as sock:
                sock.sendall(head(len(body), "Expect: 100-continue"))
                status_line = read_status_line(sock)
                if b" 100 " not in status_line or time.monotonic() > deadline:
                    break
                sock.sendall(body)  # HQ had not taken the holder's half yet
                read_until_closed(sock)
            time.sleep(0.1)
        holder.sendall(body[LIMIT // 2 :])
        read_answer(holder)

    assert status_line.startswith(b"HTTP/1.1 503 ")


def test_expect_100_continue_gets_100_when_the_body_is_wanted(hq_url: str) -> None:
    with connect(hq_url) as sock:
        sock.sendall(head(2, "Expect: 100-continue"))
        interim = read_status_line(sock) + read_status_line(sock)
        sock.sendall(b"[]")
        accepted = read_answer(sock)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert accepted.status == 202


# The bounds, with ASGI messages in process.

Messages = list[dict[str, Any]]


async def early_refusal(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers 413 without reading the body."""
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b"refused"})


async def reads_everything(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def scope_with(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "PUT", "path": "/events", "headers": list(headers)}


async def run(app: Any, scope: dict[str, Any], receive: Any, **bounds: Any) -> Messages:
    sent: Messages = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await LingeringClose(app, **{"max_bytes": 10**9, "seconds": 60, **bounds})(scope, receive, send)
    return sent


def endless(chunk: bytes, counter: list[int]) -> Any:
    async def receive() -> dict[str, Any]:
        counter.append(len(chunk))
        await asyncio.sleep(0)
        return {"type": "http.request", "body": chunk, "more_body": True}

    return receive


@pytest.mark.anyio
async def test_the_drain_stops_after_its_bytes() -> None:
    read: list[int] = []
    sent = await run(
        early_refusal,
        scope_with((b"transfer-encoding", b"chunked")),
        endless(b"x" * 1000, read),
        max_bytes=50_000,
    )

    assert 50_000 < sum(read) <= 51_000
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert [m.get("body") for m in sent[1:]] == [b"refused", b""]
    assert [m.get("more_body") for m in sent[1:]] == [True, False]


@pytest.mark.anyio
async def test_the_drain_stops_after_its_seconds() -> None:
    async def silent() -> dict[str, Any]:
        await asyncio.Event().wait()  # a client that stopped sending
        raise AssertionError("never")

    sent = await run(early_refusal, scope_with((b"content-length", b"100")), silent, seconds=0.2)

    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.mark.anyio
async def test_an_answer_after_the_whole_body_is_left_alone() -> None:
    chunks = iter([b"[", b"]"])

    async def receive() -> dict[str, Any]:
        body = next(chunks, None)
        return {"type": "http.request", "body": body or b"", "more_body": body == b"["}

    sent = await run(reads_everything, scope_with((b"content-length", b"2")), receive)

    assert sent == [
        {"type": "http.response.start", "status": 202, "headers": []},
        {"type": "http.response.body", "body": b""},
    ]


@pytest.mark.anyio
async def test_expect_100_continue_unanswered_means_nothing_is_read() -> None:
    read: list[int] = []
    sent = await run(
        early_refusal,
        scope_with((b"content-length", b"100"), (b"expect", b"100-continue")),
        endless(b"x", read),
    )

    assert read == []
    assert (b"connection", b"close") in sent[0]["headers"]
