"""The ASGI application: routes, lifespan, the exception handlers (`handlers`), and the lean
way of `PUT /events` for any ASGI server (`HQApp`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

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
from logspace.errors import LogspaceError, StoreUnavailable
from logspace.handlers import client_gone, http_error, logspace_error, unexpected
from logspace.hq import HQ
from logspace.ingest.answer import Unanswered, answer_events
from logspace.ingest.endpoint import INGEST_ROUTES, put_events
from logspace.lingering import Linger, LingeringClose, has_body
from logspace.ops import collector, openfiles, retention
from logspace.ops.accesslog import RequestLog, id_header, keep_lines
from logspace.ops.health import get_live, get_ready
from logspace.ops.logs import skip_process_details
from logspace.ops.metrics import Metrics, get_metrics
from logspace.ops.shardwatch import ShardWatch
from logspace.read.routes import READ_ROUTES
from logspace.settings import Settings
from logspace.spaces.tokens import TokenRegistry

__all__ = [
    "API_ROUTES",
    "LEAN_PATHS",
    "HQApp",
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
        Route("/metrics", _plain(get_metrics), methods=["GET"]),
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
            LogspaceError: logspace_error,
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            Exception: unexpected,
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
            await answer_events(self.state.hq, scope, request.stream(), respond)
        except Unanswered as unanswered:
            # As `ServerErrorMiddleware`: the 500 goes out as it is, not lingering.
            await unanswered.response(scope, receive, send)
            raise unanswered.error from None
        if linger is not None:
            await linger.close(scope, send, self._linger_bytes, self._linger_seconds)


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
        return _plain(next(iter(endpoints.values())))

    async def endpoint(request: Request) -> Response:
        # Starlette routes HEAD wherever GET goes.
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return endpoint


def _plain(endpoint: Endpoint) -> Endpoint:
    """`endpoint` as a Python function: Starlette's `Route` takes any other callable, such as a
    function mypyc compiled (setup.py's `COMPILED`), for an ASGI app, and would call it so."""
    if inspect.isfunction(endpoint):
        return endpoint

    async def plain(request: Request) -> Response:
        return await endpoint(request)

    return plain


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
