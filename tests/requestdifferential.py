"""The differential oracle of `lean_request`: whatever it reads from some bytes, httptools (as
uvicorn's callbacks gather it) reads alike from them: one whole `PUT` of HTTP/1.1 that keeps
the connection, with the same URL, headers and body.

tests/test_leanrequest.py uses `check`; so do the fuzz target (fuzz/harness.c with
FUZZ_CHECK=tests.requestdifferential:check, see docs/development.md) and the replay of its
corpus (fuzz/requests).
"""

from __future__ import annotations

from typing import Any

import httptools

from logspace.leanrequest import lean_request
from logspace.protocol import LEAN_MAX_BYTES

from .exactblock import exact_block

__all__ = ["LIMIT", "Difference", "check", "parsed"]

LIMIT = LEAN_MAX_BYTES


class Difference(Exception):
    """`lean_request` read something httptools does not, or reads otherwise."""


class _Callbacks:
    """What uvicorn's `HttpToolsProtocol` gathers from the parser's callbacks."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn

    def on_message_begin(self) -> None:
        self.current: dict[str, Any] = {"url": b"", "headers": [], "body": b"", "done": False}
        self.messages.append(self.current)

    def on_url(self, url: bytes) -> None:
        self.current["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current["headers"].append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.current.update(
            method=parser.get_method(),
            version=parser.get_http_version(),
            keep_alive=parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
        )

    def on_body(self, body: bytes) -> None:
        self.current["body"] += body

    def on_message_complete(self) -> None:
        self.current["done"] = True


def parsed(data: bytes) -> list[dict[str, Any]] | None:
    """httptools' reading of `data`, message by message; None when it refuses it."""
    callbacks = _Callbacks()
    try:
        callbacks.parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    return callbacks.messages


def check(data: bytes) -> bool:
    """Whether `lean_request` took `data`; raises `Difference` when what it read is not what
    httptools reads, or depends on where the bytes lie."""
    lean = lean_request(data, LIMIT)
    with exact_block(data) as view:
        in_place = lean_request(view, LIMIT)  # type: ignore[arg-type]
    if in_place != lean:
        raise Difference(f"the answer depends on where the bytes lie: {data!r}")
    if lean is None:
        return False
    messages = parsed(data)
    if messages is None or len(messages) != 1:
        raise Difference(f"httptools reads {messages!r} where lean_request reads one: {data!r}")
    (message,) = messages
    url, headers, by_name, body = lean
    # As HQ looks them up: the first of each name, decoded (see `app._headers`).
    first = {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(headers)}
    if by_name != first:
        raise Difference(f"headers by name {by_name!r}, not {first!r}: {data!r}")
    read = {
        "url": url,
        "headers": headers,
        "body": body,
        "done": True,
        "method": b"PUT",
        "version": "1.1",
        "keep_alive": True,
        "upgrade": False,
    }
    if message != read or len(body) > LIMIT:
        raise Difference(f"httptools reads {message!r}, lean_request {read!r}: {data!r}")
    return True
