"""HQ's HTTP protocol: uvicorn's httptools protocol, with a small `PUT /events` answered
without the ASGI cycle.

A fleet's agents send a few events per request, thousands of requests a second. Under
uvicorn's ASGI cycle each request costs a scope's worth of objects, an `asyncio.Event`,
message dicts and a check of every header by regular expression: about 10 µs of CPU more
than answering it in the protocol (bench/optimisations.md). `HQProtocol` spares the requests
that need none of that: a `PUT /events` (or `/api/events`) whose body, declared by
`Content-Length` and at most 64 KiB, has arrived whole, on a connection with no earlier
request still in progress. It answers them through `ingest.answer` as HQ's ASGI lean path
does (the usual one without a task: `answer_events_soon`), and writes the answer as uvicorn
writes one. Everything else goes uvicorn's way unchanged: other requests, chunked or larger
bodies, `Expect: 100-continue`, a request pipelined behind another; and uvicorn's graceful
shutdown and handling of a client that goes away apply to these requests too (the protocol
reads the same fields of the request's cycle). What one connection may take, in time and in
memory, is bounded by `GuardedProtocol` (guardedprotocol.py).

Such a request that arrives whole in one read, in the plain shape agents send, skips even
httptools' callbacks: `leanrequest.lean_request` reads it at once, or declines.

It also tells the metrics of each connection that opens and closes, and of each request its
bounds refuse (`ops.connections`).

`logspace serve` runs HQ with it; under plain `uvicorn`, the ASGI lean path gives the same
answers, only at a higher cost.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any, Final

from starlette.responses import Response
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from logspace.app import LEAN_PATHS, HQApp
from logspace.errors import LogspaceError
from logspace.guardedprotocol import GuardedProtocol, response_bytes
from logspace.ingest.answer import Unanswered, answer_events_soon
from logspace.leanrequest import LeanRead, lean_request
from logspace.ops.connections import Connections

__all__ = ["LEAN_MAX_BYTES", "HQProtocol"]

# Bodies up to uvicorn's flow-control mark: reading never pauses for them.
LEAN_MAX_BYTES: Final = HIGH_WATER_LIMIT
_URLS: Final = frozenset(path.encode() for path in LEAN_PATHS)


class HQProtocol(GuardedProtocol):
    """uvicorn's `HttpToolsProtocol` with `GuardedProtocol`'s bounds, answering small
    `PUT /events` itself (see the module)."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # GuardedProtocol's
        app = self.app
        # Only the app itself: a wrapper uvicorn added (proxy headers, trace logging) must see
        # every request.
        lean = isinstance(app, HQApp) and not config.root_path and config.limit_concurrency is None
        self._hq: HQApp | None = app if lean else None
        # The largest body taken the lean way; 0: none is.
        self._lean_limit = min(LEAN_MAX_BYTES, app.max_body_bytes) if lean else 0
        self._connections = _connections_of(app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._connections is not None:
            self._connections.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._connections is not None:
            self._connections.closed()

    def _refused_with(self, error: LogspaceError) -> None:
        if self._connections is not None:
            self._connections.refused_with(error)

    def _body_so_far(self) -> int | None:
        cycle = self.cycle
        return len(cycle.body) if isinstance(cycle, _LeanCycle) and cycle.more_body else None

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
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._between_requests = True
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
            self._head_done(app_reads_body=False)  # its body is read here
            return
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
        answer_events_soon(
            self._hq.state.hq,
            cycle.scope,
            cycle.body,
            cycle.respond,
            cycle.headers,
            functools.partial(self._spawn, cycle),
        )

    def _spawn(self, cycle: _LeanCycle, answering: Coroutine[Any, Any, None]) -> None:
        """Run the rest of a request's answer as a task. The app's coroutine is the task (no
        wrapper coroutine to pass each resumption through); its end is handled in
        `_answered`."""
        task = self.loop.create_task(answering)
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
        self.transport.write(response_bytes(self, response, request_id, cycle.keep_alive))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()


def _connections_of(app: Any) -> Connections | None:
    """The connection metrics of the HQ app `app` is, or wraps (uvicorn's middleware keep the
    app they wrap as `app`); None for another app, or one not started."""
    for _ in range(4):
        if isinstance(app, HQApp):
            hq = getattr(app.state, "hq", None)
            return None if hq is None else hq.metrics.connections
        app = getattr(app, "app", None)
    return None


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

    def respond(self, response: Response, request_id: str) -> None:
        self._protocol.write(self, response, request_id)
