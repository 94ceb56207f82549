"""HQ served by uvicorn over real sockets, in the test's own event loop, as `logspace serve`
runs it (tests/test_protocol.py, tests/test_connection_bounds.py), and raw HTTP/1.1 to talk
to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from logspace.app import create_app
from logspace.cli import server_options
from logspace.settings import Settings
from logspace.testing import MemoryStore

from .conftest import HQClient
from .leanrequests import SETTINGS

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


@contextlib.asynccontextmanager
async def serving(
    http: Any,
    store: MemoryStore | None = None,
    settings: Settings = SETTINGS,
    *,
    elasticsearch: bool = False,
    **changes: Any,
) -> AsyncIterator[Any]:
    """A uvicorn server on a free port, as `logspace serve` runs it but with `http` as its
    protocol (and any other `changes` to its options), serving HQ with `settings`: storing
    in `store`, or with `elasticsearch` in the Elasticsearch of `settings`, as HQ does."""
    app = create_app(settings, store=None if elasticsearch else store or MemoryStore())
    options = {**server_options(settings), "http": http, "log_config": None, **changes}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has a flag, not an event
        await asyncio.sleep(0.01)
    server.port = server.servers[0].sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def served_client(settings: Settings) -> AsyncIterator[HQClient]:
    """HQ as `logspace serve` runs it (its protocol, its store in Elasticsearch), and a
    client that talks to it over sockets; the client's `app` is HQ, in this process."""
    async with (
        serving(server_options(settings)["http"], settings=settings, elasticsearch=True) as server,
        HQClient(base_url=f"http://127.0.0.1:{server.port}", timeout=90) as client,
    ):
        client.app = server.config.app
        yield client


def put(path: str, body: bytes, headers: dict[str, str], version: str = "1.1") -> bytes:
    lines = [f"PUT {path} HTTP/{version}", "host: hq", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(port: int, raw: bytes, answers: int = 1) -> tuple[list[Answer], bool]:
    """Send `raw` on one connection, read `answers` answers; and whether the server closed
    the connection after them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    read: list[Answer] = []
    for _ in range(answers):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = [
            (name.lower().encode(), value.strip().encode())
            for name, _, value in (line.partition(":") for line in header_lines)
        ]
        length = int(dict(headers).get(b"content-length", b"0"))
        read.append((int(status_line.split()[1]), headers, await reader.readexactly(length)))
    try:
        closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
    except TimeoutError:
        closed = False
    writer.close()
    return read, closed
