"""The ASGI application: routes, lifespan and the one exception handler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from logspace.control import routes as control
from logspace.elastic.readstore import ReadStore
from logspace.elastic.store import EventStore, Store
from logspace.errors import (
    CLIENT_CLOSED_STATUS,
    CLIENT_CLOSED_TYPE,
    InternalError,
    LogspaceError,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
)
from logspace.hq import HQ
from logspace.ingest.endpoint import ACCEPTED, INGEST_ROUTES, put_events, store_events
from logspace.lingering import Linger, LingeringClose, has_body
from logspace.ops import collector, openfiles, retention
from logspace.ops.accesslog import RequestLog, id_header, keep_lines, log_access, request_id_from
from logspace.ops.health import get_live, get_ready
from logspace.ops.logs import REQUEST_ID, REQUEST_ID_HEADER, skip_process_details
from logspace.ops.metrics import Metrics, get_metrics
from logspace.ops.shardwatch import ShardWatch
from logspace.read.routes import READ_ROUTES
from logspace.settings import Settings
from logspace.spaces.tokens import TokenRegistry

__all__ = [
    "API_ROUTES",
    "LEAN_PATHS",
    "HQApp",
    "Unanswered",
    "create_app",
    "create_app_from_environ",
]

Endpoint = Callable[[Request], Awaitable[Response]]

# Path, endpoint, methods: the HTTP API, each wing's table; the router and the OpenAPI test
# read this one.
API_ROUTES: Final[tuple[tuple[str, Endpoint, tuple[str, ...]], ...]] = (
    *INGEST_ROUTES,
    *READ_ROUTES,
    *control.CONTROL_ROUTES,
)

log = logging.getLogger(__name__)


def error_response(error: LogspaceError) -> Response:
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def _answer(request: Request, error: LogspaceError) -> Response:
    request.state.error = error.type  # for the access log
    if error.status >= 500:
        # A client reads its own 4xx; why HQ or Elasticsearch failed is the operator's to know.
        log.warning("%s %s: %s", error.status, error.type, error.message)
    return error_response(error)


async def _logspace_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LogspaceError)
    return _answer(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _answer(
            request,
            MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}.",
                {"method": request.method, "path": request.url.path},
                headers=dict(exc.headers or {}),
            ),
        )
    # The router raises nothing else: every other path is simply not there.
    return _answer(
        request, NotFound(f"There is nothing at {request.url.path}.", {"path": request.url.path})
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Gone before its body was whole (killed, its network lost): nothing was stored, and no
    # answer can reach it. No bug of HQ's, so no error logged; the access line says so.
    request.state.error = CLIENT_CLOSED_TYPE
    return Response(status_code=CLIENT_CLOSED_STATUS)  # for the access line; never sent


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # This handler runs outside RequestLog, which therefore cannot add the id itself.
    request_id = REQUEST_ID.get()
    return error_response(
        InternalError(
            "An unexpected error occurred; it has been logged.",
            {},
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )
    )


def create_app(
    settings: Settings,
    store: EventStore | None = None,
    reader: ReadStore | None = None,
    *,
    tune_collector: bool = False,
) -> Starlette:
    """The HQ application; it opens (and closes) its own store unless one is given.

    The read API searches `reader`, by default the read side of a `Store`. `tune_collector`
    tunes the process's garbage collector once started (see `ops.collector`): for a process
    that only serves HQ."""
    tokens = TokenRegistry(settings)  # fails now, not at the first request, without tokens
    keep_lines(settings.access_log)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        metrics = Metrics()
        metrics.connections.open_files_limit.set(openfiles.current_limit())
        event_store = store or Store(settings, observer=metrics)
        if reader is None and isinstance(event_store, Store):
            searched: ReadStore | None = event_store.reader(metrics.read_failed)
        else:
            searched = reader
        watch = None
        if isinstance(event_store, Store):
            watch = ShardWatch(event_store.shard_use, settings.shards_warn_percent, metrics)
        hq = HQ(settings, tokens, event_store, metrics, searched, watch)
        app.state.hq = hq
        try:
            await hq.store.ensure_templates()
        except StoreUnavailable as error:
            # HQ still starts: writes answer 503 and install the templates once ES is back.
            log.warning("index templates not installed yet: %s", error.message)
        background = []
        if watch is not None:
            background.append(asyncio.create_task(watch.run()))
        if tune_collector:
            collector.tune()
        if settings.retention_keep_days is not None and isinstance(hq.store, Store):
            retain = retention.run_periodically(
                hq.store,
                settings.index_prefix,
                settings.retention_keep_days,
                settings.retention_interval,
                hq.metrics,
            )
            background.append(asyncio.create_task(retain))
        async with (
            _watching_tokens(tokens, settings),
            control.serving(app, settings, hq.store),
        ):
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                if own_store:
                    await hq.store.close()

    routes = [
        *_api_routes(),
        Route("/health/live", get_live, methods=["GET"]),
        Route("/health/ready", get_ready, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
    ]
    app = HQApp(
        linger=(settings.linger_max_bytes, settings.linger_seconds),
        max_body_bytes=settings.max_body_bytes,
        routes=routes,
        middleware=[
            Middleware(
                LingeringClose,
                max_bytes=settings.linger_max_bytes,
                seconds=settings.linger_seconds,
            ),
            Middleware(RequestLog),
        ],
        lifespan=lifespan,
        exception_handlers={
            LogspaceError: _logspace_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
    )
    # `/events/` is not `/events`: a redirect would make agents send the body twice.
    app.router.redirect_slashes = False
    return app


# PUT on these paths skips the router (see `HQApp`): where `put_events` is routed.
LEAN_PATHS: Final[frozenset[str]] = frozenset(
    prefix + path
    for path, endpoint, methods in INGEST_ROUTES
    if endpoint is put_events and "PUT" in methods
    for prefix in ("", "/api")
)


class HQApp(Starlette):
    """Starlette, but `PUT /events` takes a lean path: one coroutine from the ASGI call to the
    store, without the router, the middleware layers, or a response object of its own. A
    fleet's requests of a few events each cost more in those than in storing. The lean path
    calls what the routed one does, in the same order (the request id and access line of
    `RequestLog`, the lingering close of `LingeringClose`, `store_events`, the error handlers),
    so answers, logs and metrics are the routed path's own (tests/test_lean_path.py)."""

    def __init__(self, *, linger: tuple[int, float], max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._linger_bytes, self._linger_seconds = linger
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "PUT"
            and scope["path"] in LEAN_PATHS
            and not scope.get("root_path")
        ):
            scope["app"] = self
            await self._put_events(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _put_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        linger = Linger(receive) if has_body(scope) else None
        request = Request(scope, receive if linger is None else linger.receive)

        async def respond(response: Response, request_id: str) -> None:
            start: Message = {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [*response.raw_headers, id_header(request_id)],
            }
            body: Message = {"type": "http.response.body", "body": response.body}
            if linger is not None:
                start = linger.outgoing(start)
                body = linger.outgoing(body)
            await send(start)
            await send(body)

        try:
            await self.answer_events(scope, request.stream(), respond)
        except Unanswered as unanswered:
            # As `ServerErrorMiddleware`: the 500 goes out as it is, not lingering.
            await unanswered.response(scope, receive, send)
            raise unanswered.error from None
        if linger is not None:
            await linger.close(scope, send, self._linger_bytes, self._linger_seconds)

    async def answer_events(
        self,
        scope: Scope,
        body: AsyncIterable[bytes] | bytes,
        respond: Callable[[Response, str], Awaitable[None] | None],
        headers: dict[str, str] | None = None,
    ) -> None:
        """Store the events of a `PUT /events`, answer through `respond` (the response, and
        the request id to add as a header; awaited if it returns an awaitable), write the
        access line. HQ's two lean ways in, the ASGI one above and the server's
        (`protocol.HQProtocol`), share this, so both answer and log as the routed path does:
        `RequestLog`'s request id and access line, `store_events`, the error handlers. An
        unexpected error is raised once its access line is written, as `Unanswered` (with the
        500 to send) if no answer had begun. `headers`: the scope's by name (`_headers`), when
        the caller read them so already."""
        if headers is None:
            headers = _headers(scope)
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        REQUEST_ID.set(request_id)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        answering = False
        try:
            try:
                await store_events(self.state.hq, headers, body, state)
                response = ACCEPTED
            except LogspaceError as error:
                response = _answer(Request(scope), error)
            except ClientDisconnect:
                state["error"] = CLIENT_CLOSED_TYPE
                log_access(scope, CLIENT_CLOSED_STATUS, started, state)
                return
            status = response.status_code
            answering = True
            sending = respond(response, request_id)
            if sending is not None:  # the server's protocol writes at once (no coroutine)
                await sending
        except Exception as exc:
            # As `RequestLog`, then `ServerErrorMiddleware`: the access line, a 500 unless an
            # answer has begun, and the error goes on to the server, which logs it.
            state.setdefault("error", "INTERNAL_ERROR")
            log_access(scope, status if answering else 500, started, state)
            if answering:
                raise
            raise Unanswered(await _unexpected(Request(scope), exc), exc) from exc
        except BaseException:  # cancelled: still its access line, as `RequestLog` writes
            log_access(scope, status if answering else 500, started, state)
            raise
        log_access(scope, status, started, state)


class Unanswered(Exception):
    """An unexpected error in `answer_events` before any answer: the 500 to send, and the
    error, which goes on to the server."""

    def __init__(self, response: Response, error: Exception) -> None:
        super().__init__(str(error))
        self.response = response
        self.error = error


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by name, the first of each, as Starlette's `Headers` reads
    them (names in the scope are lower case), in a plain dict: cheaper to look up, and a
    name that is absent costs no `KeyError`."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


def _api_routes() -> list[Route]:
    """Every path of `API_ROUTES`, at `/x` and at `/api/x` (the original 0.4 agents' base
    path). A path that two wings serve (`/events`: PUT stores, GET and POST search) is one
    route, so a method neither takes gets one 405 naming every method the path takes."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for path, endpoint, methods in API_ROUTES:
        by_path.setdefault(path, {}).update(dict.fromkeys(methods, endpoint))
    return [
        Route(prefix + path, _by_method(endpoints), methods=list(endpoints))
        for path, endpoints in by_path.items()
        for prefix in ("", "/api")
    ]


def _by_method(endpoints: dict[str, Endpoint]) -> Endpoint:
    if len(set(endpoints.values())) == 1:
        return next(iter(endpoints.values()))

    async def endpoint(request: Request) -> Response:
        # Starlette routes HEAD wherever GET goes.
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return endpoint


@contextlib.asynccontextmanager
async def _watching_tokens(tokens: TokenRegistry, settings: Settings) -> AsyncIterator[None]:
    """Reload the tokens file on change and on SIGHUP while HQ runs."""
    if not settings.space_tokens_file:
        yield
        return
    loop = asyncio.get_running_loop()
    watcher = asyncio.create_task(tokens.watch())
    try:
        loop.add_signal_handler(signal.SIGHUP, tokens.reload)
        on_sighup = True
    except (RuntimeError, ValueError):  # not the main thread, e.g. under a test runner
        on_sighup = False
    try:
        yield
    finally:
        watcher.cancel()
        if on_sighup:
            loop.remove_signal_handler(signal.SIGHUP)


def create_app_from_environ() -> Starlette:
    """Uvicorn factory: `uvicorn --factory logspace.app:create_app_from_environ`."""
    settings = Settings.from_env(os.environ)
    skip_process_details()  # each worker configures its logging anew (uvicorn)
    openfiles.raise_limit()  # each worker for itself, whoever started it
    return create_app(settings, tune_collector=settings.tune_gc)
