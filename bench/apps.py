"""The applications of figure (g): one route answering "ok", as ASGI (Starlette under uvicorn)
and as WSGI (a plain callable under gunicorn), with the request agent or without.

The server imports them by name; the environment chooses the arm. Without BENCH_AGENT_HQ_URL
the app is plain. With it, the app sends one `http/request` event per request through a
`Sender` to that HQ, with BENCH_AGENT_QUEUE_DIR, BENCH_AGENT_MARKER, and writes the sender's
final counters as JSON to BENCH_AGENT_STATS when the server stops it.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from logspace.agent import AgentConfig, ASGIMiddleware, Dropped, Sender, WSGIMiddleware

from .documents import TOKEN

# A stop flushes everything to HQ before the server exits (an arm waits for it).
SHUTDOWN_SECONDS = 300.0

# Why the sender dropped events, by reason, for the stats (an arm that drops says why).
_drop_reasons: collections.Counter[str] = collections.Counter()


def _count_drops(drops: list[Dropped]) -> None:
    _drop_reasons.update(drop.reason for drop in drops)


def sender() -> Sender | None:
    hq_url = os.environ.get("BENCH_AGENT_HQ_URL")
    if not hq_url:
        return None
    config = AgentConfig(
        token=TOKEN,
        hq_url=hq_url,
        queue_dir=Path(os.environ["BENCH_AGENT_QUEUE_DIR"]),
        queue_name=f"app-{os.getpid()}",
        marker=os.environ["BENCH_AGENT_MARKER"],
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    return Sender(config, on_drop=_count_drops).start()


def close(agent: Sender) -> None:
    agent.close()
    stats = agent.stats
    Path(os.environ["BENCH_AGENT_STATS"]).write_bytes(
        orjson.dumps(
            {
                "enqueued": stats.enqueued,
                "sent": stats.sent,
                "dropped": stats.dropped,
                "queued": stats.queued,
                # Drops beyond the buffer's report bound are counted but not reported.
                "drop_reasons": dict(_drop_reasons),
            }
        )
    )


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def asgi_app() -> Starlette:
    """`uvicorn --factory bench.apps:asgi_app`."""
    agent = sender()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if agent is not None:
            close(agent)

    middleware = [] if agent is None else [Middleware(ASGIMiddleware, sink=agent)]
    return Starlette(routes=[Route("/", ok)], middleware=middleware, lifespan=lifespan)


def _plain_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


# gunicorn imports this module in each worker (no --preload), so each has its own sender.
_wsgi_sender = sender() if os.environ.get("BENCH_AGENT_WSGI") else None
wsgi_app = _plain_wsgi if _wsgi_sender is None else WSGIMiddleware(_plain_wsgi, _wsgi_sender)


def close_wsgi_sender() -> None:
    """Close the worker's sender on a clean stop (gunicorn's `worker_exit`, bench/gunicorn.py)."""
    if _wsgi_sender is not None:
        close(_wsgi_sender)


async def null_events(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`uvicorn bench.apps:null_events`: a raw ASGI app that reads each request's body and
    answers 202 `{}`, and does nothing else: the HTTP server's own cost of a fleet's
    requests (figure f3-floor, bench/fleetfloor.py)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": _NULL_HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


_NULL_HEADERS = [(b"content-type", b"application/json")]


def hq_stub() -> Starlette:
    """`uvicorn --factory bench.apps:hq_stub`: answers 202 to every batch, stores nothing;
    `GET /requests` says how many batches it was sent so far."""
    requests = 0

    async def events(request: Request) -> Response:
        nonlocal requests
        await request.body()
        requests += 1
        return Response(b"{}", status_code=202, media_type="application/json")

    async def count(request: Request) -> Response:
        return Response(orjson.dumps({"requests": requests}), media_type="application/json")

    return Starlette(
        routes=[
            Route("/events", events, methods=["PUT"]),
            Route("/requests", count),
            Route("/", ok),
        ]
    )
