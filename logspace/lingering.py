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

__all__ = ["LingeringClose"]


class LingeringClose:
    """ASGI middleware: drain what is left of a request body before an early answer closes."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        asked = False  # the app read (so uvicorn sent `100 Continue` if it was expected)
        finished = False  # the body was read to its end, or the client went away
        early = False  # the answer started before the body was read
        unfinished = False  # its last part is held back until the drain is over

        async def receive_noting() -> Message:
            nonlocal asked, finished
            asked = True
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                finished = True
            return message

        async def send_lingering(message: Message) -> None:
            nonlocal early, unfinished
            if message["type"] == "http.response.start" and not finished:
                early = True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            elif (
                early
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
            ):
                # The whole answer goes out now; the response is completed (and the
                # connection closed) only after the drain.
                message = {**message, "more_body": True}
                unfinished = True
            await send(message)

        await self.app(scope, receive_noting, send_lingering)
        if unfinished:
            # After the app returned: it holds nothing any more, and its access line is written.
            if asked or not _expects_continue(scope):
                await self._drain(receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        drained = 0
        try:
            async with asyncio.timeout(self.seconds):
                while drained <= self.max_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    drained += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            pass


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )
