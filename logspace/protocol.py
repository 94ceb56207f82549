"""HQ's HTTP protocol: uvicorn's httptools protocol, with a small `PUT /events` answered
without the ASGI cycle.

A fleet's agents send a few events per request, thousands of requests a second. Under
uvicorn's ASGI cycle each request costs a scope's worth of objects, an `asyncio.Event`,
message dicts and a check of every header by regular expression: about 10 µs of CPU more
than answering it in the protocol (bench/optimisations.md). `HQProtocol` spares the
requests that need none of that: a `PUT /events` (or `/api/events`) whose body, declared by
Content-Length and at most 64 KiB, has arrived whole, on a connection with no earlier request
still in progress. It
answers them through `HQApp.answer_events`, as HQ's ASGI lean path does, and writes the
answer as uvicorn writes one. Everything else goes uvicorn's way unchanged: other requests,
chunked or larger bodies, `Expect: 100-continue`, a request pipelined behind another; and
uvicorn's graceful shutdown and handling of a client that goes away apply to these requests
too (the protocol reads the same fields of the request's cycle). The keep-alive timeout is
uvicorn's, kept with one timer per connection rather than one per response.

Such a request that arrives whole in one read, in the plain shape agents send, skips even
httptools' callbacks: `leanrequest.lean_request` reads it at once, or declines.

`logspace serve` runs HQ with it; under plain `uvicorn`, the ASGI lean path gives the same
answers, only at a higher cost.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.responses import Response
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from logspace.app import LEAN_PATHS, HQApp, Unanswered, error_response
from logspace.body import MIN_BODY_RATE
from logspace.errors import RequestTimeout
from logspace.leanrequest import LeanRead, lean_request
from logspace.ops.accesslog import id_header, log_access
from logspace.settings import Settings

__all__ = ["LEAN_MAX_BYTES", "HQProtocol"]

# Bodies up to uvicorn's flow-control mark: reading never pauses for them.
LEAN_MAX_BYTES: Final = HIGH_WATER_LIMIT
_URLS: Final = frozenset(path.encode() for path in LEAN_PATHS)


class HQProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol`, answering small `PUT /events` itself (see the module)."""

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
        app = self.app
        # Only the app itself: a wrapper uvicorn added (proxy headers, trace logging) must see
        # every request.
        lean = isinstance(app, HQApp) and not config.root_path and config.limit_concurrency is None
        self._hq: HQApp | None = app if lean else None
        # The largest body taken the lean way; 0: none is.
        self._lean_limit = min(LEAN_MAX_BYTES, app.max_body_bytes) if lean else 0

    @classmethod
    def configured(cls, settings: Settings) -> Callable[..., HQProtocol]:
        """The protocol as uvicorn is to make it for each connection, with `settings`."""
        return functools.partial(cls, request_read_seconds=settings.request_read_seconds)

    # -- one timer per connection: keep-alive, and requests that take too long to arrive --
    # uvicorn sets a timer when a response completes and cancels it when data arrives: about
    # 3 µs per request. Here the timer stays; when it fires, it looks at the connection:
    # - idle (no data since the last response, or since it opened: uvicorn would keep a
    #   connection that never sends a byte for ever) for `timeout_keep_alive`: closed;
    # - reading a request, from its first byte until the app has it, for longer than
    #   `request_read_seconds` (and a second more for each MIN_BODY_RATE bytes of a lean
    #   body come so far): answered 408 REQUEST_TIMEOUT and closed. A body the app reads
    #   itself is held to the same rule there (`body.read_body`);
    # - else it is set again for when that will be, or left to the response that ends the
    #   request the app has.

    _idle_since: float | None = None
    _reading_since: float | None = None
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._set_timer(self._idle_since + self.timeout_keep_alive)

    def _set_timer(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return  # it fires first, and sets itself again as needed
            timer.cancel()
        self._timer = self.loop.call_at(when, self._check)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # data came, or the connection went

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

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._reading_since is not None:
            cycle = self.cycle
            body = len(cycle.body) if isinstance(cycle, _LeanCycle) and cycle.more_body else 0
            until = self._reading_since + self.request_read_seconds + body / MIN_BODY_RATE
            if now >= until:
                self._time_out(now - self._reading_since)
                return
        elif self._idle_since is not None:
            until = self._idle_since + self.timeout_keep_alive
            if now >= until:
                self.transport.close()
                return
        else:
            return  # the app has a request: the response that ends it sets the timer again
        self._timer = self.loop.call_at(until, self._check)

    def _time_out(self, took: float) -> None:
        """Answer 408 to the request being read, which took `took` seconds so far; close."""
        cycle = self.cycle
        if isinstance(cycle, _LeanCycle) and cycle.more_body:
            cycle.disconnected = True  # this is its answer: it never goes to the app
        error = RequestTimeout(self.request_read_seconds, MIN_BODY_RATE)
        self.transport.write(_response_bytes(self, error_response(error), None, False))
        self.transport.close()
        # As much of the request line as came (the method is known once the path begins).
        scope = {
            "method": self.parser.get_method().decode("latin-1") if self.url else "-",
            "path": self.url.decode("latin-1") or "-",
        }
        log_access(scope, error.status, time.perf_counter() - took, {"error": error.type})

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the lean way ---------------------------------------------------------------------

    # Whether the parser is between requests: bytes that bring a whole request may then skip it.
    _between_requests = True

    def data_received(self, data: bytes) -> None:
        limit = self._lean_limit
        if (
            limit
            and self._between_requests
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
        ):
            request = lean_request(data, limit)
            if request is not None:
                self._unset_keepalive_if_required()
                self._take(request)
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._between_requests = False
        self._reading_since = now = self.loop.time()
        self._set_timer(now + self.request_read_seconds)
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._between_requests = True
        self._reading_since = None
        super().on_message_complete()

    def _take(self, request: LeanRead) -> None:
        """Start a request read by `lean_request`, as the parser's callbacks would have."""
        url, headers, by_name, body = request
        scope: Any = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
            "method": "PUT",
            "path": url.decode("ascii"),
            "raw_path": url,
            "query_string": b"",
        }
        # What the callbacks leave behind them, as they would.
        self.url, self.headers, self.scope = url, headers, scope
        self.expect_100_continue = False
        cycle = self.cycle = _LeanCycle(self, scope, True)  # type: ignore[assignment]
        cycle.body = body
        cycle.headers = by_name
        cycle.more_body = False
        cycle.set()

    def on_headers_complete(self) -> None:
        limit = self._lean_limit
        if limit and self._takes(limit):
            http_version = self.parser.get_http_version()
            scope = self.scope
            scope["method"] = "PUT"
            if http_version != "1.1":
                scope["http_version"] = http_version
            scope["path"] = self.url.decode("ascii")
            scope["raw_path"] = self.url
            scope["query_string"] = b""
            keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
            self.cycle = _LeanCycle(self, scope, keep_alive)  # type: ignore[assignment]
            return  # its body is read here, still against the clock
        self._reading_since = None  # the app reads the body, if any, on its own clock
        super().on_headers_complete()

    def _takes(self, limit: int) -> bool:
        """Whether this request is one for the lean way (its headers are in)."""
        cycle = self.cycle
        if (
            self.url not in _URLS
            or self.expect_100_continue
            or (cycle is not None and not cycle.response_complete)
            or self.parser.get_method() != b"PUT"
            or self.parser.get_http_version() not in ("1.1", "1.0")
            or self.parser.should_upgrade()
        ):
            return False
        length: bytes | None = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return False
                length = value
            elif name == b"transfer-encoding":
                return False
        return length is not None and length.isdigit() and int(length) <= limit

    def _answer(self, cycle: _LeanCycle) -> None:
        assert self._hq is not None
        # The app's coroutine is the task (no wrapper coroutine to pass each resumption
        # through); its end is handled in `_answered`.
        task = self.loop.create_task(
            self._hq.answer_events(cycle.scope, cycle.body, cycle.respond, cycle.headers)
        )
        task.add_done_callback(functools.partial(self._answered, cycle))
        self.tasks.add(task)

    def _answered(self, cycle: _LeanCycle, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is None:
            return
        if isinstance(error, Unanswered):
            # As uvicorn after `ServerErrorMiddleware` answered: log, and close once sent.
            self.logger.error("Exception in ASGI application\n", exc_info=error.error)
            self.write(cycle, error.response, None)
            self.transport.close()
            return
        self.logger.error("Exception in ASGI application\n", exc_info=error)
        if not cycle.response_complete:  # the answer had begun: as uvicorn, close
            self.transport.close()

    def write(self, cycle: _LeanCycle, response: Response, request_id: str | None) -> None:
        """Send `response` as uvicorn's `send` would, and complete the request."""
        if cycle.disconnected:  # as uvicorn: the client went away, nothing to send
            return
        self.transport.write(_response_bytes(self, response, request_id, cycle.keep_alive))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()


def _response_bytes(
    protocol: HQProtocol, response: Response, request_id: str | None, keep_alive: bool
) -> bytes:
    """`response` as uvicorn's `send` writes it."""
    content = [STATUS_LINE[response.status_code]]
    for name, value in protocol.server_state.default_headers:
        content += (name.lower(), b": ", value, b"\r\n")
    for name, value in response.raw_headers:
        content += (name, b": ", value, b"\r\n")
    if request_id is not None:
        name, value = id_header(request_id)
        content += (name, b": ", value, b"\r\n")
    if not keep_alive:
        content.append(b"connection: close\r\n")
    body = response.body
    content += (b"\r\n", body if isinstance(body, bytes) else bytes(body))
    return b"".join(content)


class _LeanCycle:
    """A lean request, in the fields of uvicorn's `RequestResponseCycle` that its protocol
    reads and sets: `body` and `more_body` as the body arrives, `disconnected` when the
    client goes away, `keep_alive` (cleared by a graceful shutdown), `response_complete`, and
    `message_event`, set after each of those: here the request starts once its body is whole."""

    __slots__ = (
        "_protocol",
        "_started",
        "body",
        "disconnected",
        "headers",
        "keep_alive",
        "more_body",
        "response_complete",
        "scope",
    )

    def __init__(self, protocol: HQProtocol, scope: Any, keep_alive: bool) -> None:
        self._protocol = protocol
        self._started = False
        self.scope = scope
        self.keep_alive = keep_alive
        self.body = b""  # uvicorn adds to it: a body in one piece is not copied
        self.headers: dict[str, str] | None = None  # by name, when read already
        self.more_body = True
        self.disconnected = False
        self.response_complete = False

    @property
    def message_event(self) -> _LeanCycle:
        return self

    def set(self) -> None:
        if not self.more_body and not self._started and not self.disconnected:
            self._started = True
            self._protocol._answer(self)

    async def respond(self, response: Response, request_id: str) -> None:
        self._protocol.write(self, response, request_id)
