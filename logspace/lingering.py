"""Lingering close: an answer given before the request body was read reaches the client.

HQ refuses some requests before it has read their body (a declared length over the limit,
503 OVERLOADED, a bad token, a wrong path). If the server closes the connection then, while
the client is still sending, the client's TCP stack gets a reset and usually drops the answer
with it; clients that write the whole body before they read (Python's urllib, Java's
HttpURLConnection, Apache HttpClient without `Expect: 100-continue`) see "connection reset",
never the status or `Retry-After`, and an agent would send the same refused batch forever.

So, like nginx's lingering close, `LingeringClose` sends such an answer in full at once (with
`Connection: close`), then reads and discards the rest of the body, up to `max_bytes` and
`seconds`, and only then lets the server complete the response and close. A client that asked
`Expect: 100-continue` and was not told to continue has not sent its body: it gets the answer
at once and nothing is read (uvicorn sends `100 Continue` only when the app first reads).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Linger", "LingeringClose"]


class Linger:
    """One request's side of the lingering close: wraps its `receive` and the messages of its
    answer, then drains what is left. `LingeringClose` and HQ's lean `PUT /events` path
    (`app.HQApp`) both use it, so the rule is written once."""

    __slots__ = ("_receive", "asked", "early", "finished", "unfinished")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.asked = False  # the app read (so uvicorn sent `100 Continue` if it was expected)
        self.finished = False  # the body was read to its end, or the client went away
        self.early = False  # the answer started before the body was read
        self.unfinished = False  # its last part is held back until the drain is over

    async def receive(self) -> Message:
        self.asked = True
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message

    def outgoing(self, message: Message) -> Message:
        """`message` of the answer as it is to be sent."""
        if message["type"] == "http.response.start" and not self.finished:
            self.early = True
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        elif (
            self.early
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            # The whole answer goes out now; the response is completed (and the
            # connection closed) only after the drain.
            message = {**message, "more_body": True}
            self.unfinished = True
        return message

    async def close(self, scope: Scope, send: Send, max_bytes: int, seconds: float) -> None:
        """After the app returned (it holds nothing any more, and its access line is
        written): drain the body if the answer was early, then complete the response."""
        if self.unfinished:
            if self.asked or not _expects_continue(scope):
                await _drain(self._receive, max_bytes, seconds)
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class LingeringClose:
    """ASGI middleware: drain what is left of a request body before an early answer closes."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        linger = Linger(receive)

        async def send_lingering(message: Message) -> None:
            await send(linger.outgoing(message))

        await self.app(scope, linger.receive, send_lingering)
        await linger.close(scope, send, self.max_bytes, self.seconds)


async def _drain(receive: Receive, max_bytes: int, seconds: float) -> None:
    drained = 0
    try:
        async with asyncio.timeout(seconds):
            while drained <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        pass


def has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )
