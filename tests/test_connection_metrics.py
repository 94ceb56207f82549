"""What `/metrics` says of HQ's connections, over real sockets to `logspace serve`'s protocol:
how many are open, the open-file limit that bounds them, and the requests the server refused
itself (408, 431) before any endpoint saw them."""

from __future__ import annotations

import asyncio
import resource

import pytest

from logspace.protocol import HQProtocol
from logspace.testing import MemoryStore

from .hqserving import exchange, serving
from .leanrequests import EVENTS
from .test_connection_bounds import QUICK, answer, head

pytestmark = pytest.mark.anyio


async def scraped(port: int) -> dict[str, float]:
    """The samples of `/metrics` by name and labels, as written."""
    [(status, _, body)], _ = await exchange(port, b"GET /metrics HTTP/1.1\r\nhost: hq\r\n\r\n")
    assert status == 200
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_open_connections_are_counted_until_they_close() -> None:
    async with serving(HQProtocol.configured(QUICK), MemoryStore(), QUICK) as server:
        connections = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(head(len(EVENTS)) + EVENTS)
            assert (await answer(reader))[0] == 202  # accepted, and kept open
            connections.append(writer)

        open_then = (await scraped(server.port))["logspace_connections"]
        for writer in connections:
            writer.close()
        for _ in range(50):
            open_after = (await scraped(server.port))["logspace_connections"]
            if open_after == 1:
                break
            await asyncio.sleep(0.05)

    assert open_then == 4  # the three, and the scrape's own
    assert open_after == 1


async def test_the_open_file_limit_is_shown() -> None:
    async with serving(HQProtocol.configured(QUICK), MemoryStore(), QUICK) as server:
        samples = await scraped(server.port)

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert samples["logspace_open_files_limit"] == (
        float("inf") if soft == resource.RLIM_INFINITY else soft
    )


async def test_requests_the_server_refused_are_counted_by_reason() -> None:
    async with serving(HQProtocol.configured(QUICK), MemoryStore(), QUICK) as server:
        before = await scraped(server.port)
        # 431: a head beyond 64 KiB.
        endless = b"PUT /events HTTP/1.1\r\nhost: hq\r\nx-long: " + b"x" * 70_000 + b"\r\n\r\n"
        [(status, _, _)], _ = await exchange(server.port, endless)
        assert status == 431
        # 408: a head that stops halfway, and a body that never comes.
        for sent in (head(10)[:20], head(len(EVENTS))):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(sent)
            assert (await asyncio.wait_for(answer(reader), 5))[0] == 408
            writer.close()
        after = await scraped(server.port)

    timeout = 'logspace_refused_requests_total{reason="request_timeout"}'
    too_large = 'logspace_refused_requests_total{reason="headers_too_large"}'
    assert (before[timeout], before[too_large]) == (0, 0)
    assert (after[timeout], after[too_large]) == (2, 1)
