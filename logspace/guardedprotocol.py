"""GuardedProtocol: uvicorn's httptools protocol with bounds on what one connection may take.

uvicorn keeps a connection that never sends a byte, or stops halfway through a request, for
ever, and holds a request's head (its request line and headers) in memory however long it
grows: one client could take a file descriptor per connection, or hundreds of megabytes with
a single endless header line. A fleet's HQ serves thousands of connections, some of them on
bad links. So here:

- a connection idle for `timeout_keep_alive` is closed, a new one that has sent nothing too;
- a request must arrive whole in time: its head within `request_read_seconds`, and a body the
  protocol reads itself before the app sees the request (`_body_so_far`) at `MIN_BODY_RATE`
  after that, else `408 REQUEST_TIMEOUT` (a body the app reads is held to the same rule
  there, `body.read_body`);
- a head larger than `MAX_HEAD_BYTES` gets `431 HEADERS_TOO_LARGE`.

Both answers end the connection (after a moment in which what the client still sends is
dropped, so that it gets the answer rather than a reset). One timer per connection keeps both
clocks: uvicorn sets a keep-alive timer when a response completes and cancels it when data
arrives, about 3 µs per request; this one stays, and when it fires it looks at what the
connection is doing.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.responses import Response
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from logspace.body import MIN_BODY_RATE, read_deadline
from logspace.errors import HeadersTooLarge, LogspaceError, RequestTimeout
from logspace.handlers import error_response
from logspace.ops.accesslog import id_header, log_access
from logspace.settings import Settings

__all__ = ["MAX_HEAD_BYTES", "GuardedProtocol", "response_bytes"]

# A request line and headers larger than this get 431 (nginx allows 32 KiB by default).
MAX_HEAD_BYTES: Final = 64 * 1024
# How long a refused connection stays open, its bytes dropped, before it is closed.
REFUSED_SECONDS: Final = 2.0


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol` with the bounds of the module."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        request_read_seconds: float = Settings.request_read_seconds,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.request_read_seconds = request_read_seconds

    @classmethod
    def configured(cls, settings: Settings) -> Callable[..., GuardedProtocol]:
        """The protocol as uvicorn is to make it for each connection, with `settings`."""
        return functools.partial(cls, request_read_seconds=settings.request_read_seconds)

    # When the connection went idle (None: busy), when the request being read began (None:
    # none is), whether the bytes that come now are a head's (or precede one), how many of
    # them came, and how many heads were read whole.
    _idle_since: float | None = None
    _reading_since: float | None = None
    _in_head = True
    _head_bytes = 0
    _heads = 0
    _timer: asyncio.TimerHandle | None = None
    _refused = False
    url = b""  # uvicorn sets it when a request begins

    def _body_so_far(self) -> int | None:
        """The bytes come so far of a body this protocol reads itself before the app sees the
        request; None when no such body is being read."""
        return None

    def _refused_with(self, error: LogspaceError) -> None:
        """A request was refused with `error` (answered, access line written): for metrics."""

    # -- connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._set_timer(self._idle_since + self.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # what a refused client still sends is dropped, unread
        if self._in_head:
            room = MAX_HEAD_BYTES - self._head_bytes
            if len(data) > room:
                # Only as much as a head may take; if no head is over by then, this one is
                # refused before httptools buffers any more of it. (What follows a head that
                # ends in this read is counted from the next read on: at most one read more.)
                heads = self._heads
                super().data_received(data[:room])
                if self.transport.is_closing():
                    return
                if self._heads == heads:
                    self._refuse(HeadersTooLarge(MAX_HEAD_BYTES))
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        super().data_received(data)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # data came, or the connection went

    # -- a request's progress -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reading_since = now = self.loop.time()
        self._set_timer(now + self.request_read_seconds)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_done(app_reads_body=True)
        super().on_headers_complete()

    def _head_done(self, *, app_reads_body: bool) -> None:
        """The head is in; the body, if any, is read by the app (on its own clock) or here."""
        self._in_head = False
        self._heads += 1
        if app_reads_body:
            self._reading_since = None

    def on_message_complete(self) -> None:
        self._reading_since = None
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        self._set_timer(self._idle_since + self.timeout_keep_alive)

    # -- the timer ------------------------------------------------------------------------

    def _set_timer(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return  # it fires first, and sets itself again as needed
            timer.cancel()
        self._timer = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._reading_since is not None:
            body = self._body_so_far() or 0
            until = read_deadline(self._reading_since, self.request_read_seconds, body)
            if now >= until:
                self._refuse(RequestTimeout(self.request_read_seconds, MIN_BODY_RATE))
                return
        elif self._idle_since is not None:
            until = self._idle_since + self.timeout_keep_alive
            if now >= until:
                self.transport.close()
                return
        else:
            return  # the app has a request: the response that ends it sets the timer again
        self._timer = self.loop.call_at(until, self._check)

    def _refuse(self, error: LogspaceError) -> None:
        """Answer `error` to the request being read, write its access line, and close."""
        cycle = self.cycle
        if self._body_so_far() is not None:
            cycle.disconnected = True  # this is its answer: the app never sees it
        elif cycle is not None and not cycle.response_complete:
            # An earlier request's answer is still due on this connection (pipelined):
            # nothing may go out before it, and nothing more comes in.
            self.transport.close()
            return
        self.transport.write(response_bytes(self, error_response(error), None, False))
        # Closed at once, a connection the client is still sending on would be reset, and
        # the client would likely lose the answer: so HQ ends its side, drops what still
        # comes for a moment, and then closes.
        self._refused = True
        self.transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(REFUSED_SECONDS, self.transport.close)
        self._refused_with(error)
        began = self._reading_since
        took = 0.0 if began is None else self.loop.time() - began
        # As much of the request line as came (the method is known once the path begins).
        scope = {
            "method": self.parser.get_method().decode("latin-1") if self.url else "-",
            "path": self.url.decode("latin-1") or "-",
        }
        log_access(scope, error.status, time.perf_counter() - took, {"error": error.type})


def response_bytes(
    protocol: HttpToolsProtocol, response: Any, request_id: str | None, keep_alive: bool
) -> bytes:
    """A starlette `response` as uvicorn's `send` writes it."""
    defaults = protocol.server_state.default_headers
    last = _last_head
    if last[0] is defaults and last[1] is response:
        head = last[2]
    else:
        head = _head(defaults, response)
        if response.__class__ is Response:
            _remember_head(defaults, response, head)
    content = [head]
    if request_id is not None:
        name, value = id_header(request_id)
        content += (name, b": ", value, b"\r\n")
    if not keep_alive:
        content.append(b"connection: close\r\n")
    body = response.body
    content += (b"\r\n", body if isinstance(body, bytes) else bytes(body))
    return b"".join(content)


def _head(defaults: list[tuple[bytes, bytes]], response: Any) -> bytes:
    content = [STATUS_LINE[response.status_code]]
    for name, value in defaults:
        content += (name.lower(), b": ", value, b"\r\n")
    for name, value in response.raw_headers:
        content += (name, b": ", value, b"\r\n")
    return b"".join(content)


# The head last written for a plain `Response`: a fleet's answers are nearly all the same 202,
# and uvicorn replaces its default headers (the date) with a new list each second. The objects
# are held, not their ids, so a new list or response can never be taken for the old.
_last_head: tuple[Any, Any, bytes] = (None, None, b"")


def _remember_head(defaults: list[tuple[bytes, bytes]], response: Any, head: bytes) -> None:
    global _last_head
    _last_head = (defaults, response, head)
