"""Thin endpoint functions: read the body, authenticate, decode, store, answer."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from .auth import SpaceTokens
from .decode import decode
from .errors import RequestTooLarge, UnsupportedContentEncoding
from .metrics import Metrics
from .settings import Settings
from .store import EventStore

__all__ = ["HQ", "put_events"]


@dataclass(frozen=True)
class HQ:
    """What the endpoints need, built once per app."""

    settings: Settings
    tokens: SpaceTokens
    store: EventStore
    metrics: Metrics


async def put_events(request: Request) -> Response:
    hq: HQ = request.app.state.hq
    with hq.metrics.ingest() as ingest:
        space = hq.tokens.space_for(request.headers, "write")
        ingest.space = request.state.space = space
        body = await read_body(request, hq.settings.max_body_bytes)
        events = decode(body)
        ingest.writing(len(events))
        ingest.stored(await hq.store.write(events, space))
    return Response(status_code=202)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it grows past `limit` (never buffered beyond)."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedContentEncoding(
            f"Content-Encoding '{encoding}' is not supported; send the body uncompressed.",
            {"content-encoding": encoding},
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than {limit} bytes; send fewer events per request.",
        {"max-body-bytes": limit},
    )
