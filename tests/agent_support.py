"""Shared by the agent tests: HQ in process for agents, and an HQ that can go down."""

from __future__ import annotations

import contextlib
import gzip
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.agent import AgentConfig
from logspace.app import create_app
from logspace.settings import Settings

Serve = Callable[..., contextlib.AbstractAsyncContextManager[httpx.ASGITransport]]


@pytest.fixture
def serve_hq(settings: Settings) -> Serve:
    """`async with serve_hq(**changed_settings) as transport`: HQ in process, on the node."""

    @contextlib.asynccontextmanager
    async def serve(**changes: Any) -> AsyncIterator[httpx.ASGITransport]:
        app = create_app(replace(settings, **changes))
        async with app.router.lifespan_context(app):
            yield httpx.ASGITransport(app=app)

    return serve


def agent_config(queue_dir: Path, **changes: Any) -> AgentConfig:
    options: dict[str, Any] = {
        "token": "development",
        "hq_url": "http://hq",
        "queue_dir": queue_dir,
        "batch_max_age": 0.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "shutdown_timeout": 30.0,
    }
    options.update(changes)
    return AgentConfig(**options)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Switch(httpx.AsyncBaseTransport):
    """Between agent and HQ: refuses connections while `hq` is None, and notes which event
    ids HQ accepted with a 202 (to show none is delivered twice)."""

    def __init__(self) -> None:
        self.hq: httpx.AsyncBaseTransport | None = None
        self.attempts = 0
        self.accepted: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.hq is None:
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.hq.handle_async_request(request)
        await response.aread()
        if response.status_code == 202:
            body = request.content
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.accepted.update(event["id"] for event in orjson.loads(body))
        return response
