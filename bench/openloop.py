"""A cheap open-loop HTTP/1.1 generator on many keep-alive connections, and an idle-connection
holder: figure (f)'s fixed-rate arm (f4) and its memory figure (f5).

wrk has no fixed rate and measures from each request's actual send, so a server that stalls
hides its queue from it (coordinated omission); wrk2 and oha are not in Debian. This sends
prebuilt requests straight on asyncio transports (uvloop), no HTTP client library: 0.3-0.7 ms
of CPU per request on the shared two-core box, at most a tenth of a core at f4's rates.
Request k is due at t0 + k / rate; it goes out on a free connection then, or waits for one,
and its latency runs from the due time to the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from hdrh.histogram import HdrHistogram

__all__ = ["Answered", "Client", "OpenLoop", "request_bytes"]


def request_bytes(
    method: str, host: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Answered:
    status: int  # 0: the connection closed before an answer
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers are read by Content-Length (or chunked)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answered] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Answered(0, b""))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = self._parse()
        if answer is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)

    def _parse(self) -> Answered | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).lower()
        status = int(head[9:12])
        start = end + 4
        if b"\r\ntransfer-encoding: chunked" in head:
            chunks = _dechunk(self.buffer, start)
            if chunks is None:
                return None
            body, consumed = chunks
        else:
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self.buffer) < start + length:
                return None
            body, consumed = bytes(self.buffer[start : start + length]), start + length
        del self.buffer[:consumed]
        return Answered(status, body)

    async def exchange(self, request: bytes) -> Answered:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _dechunk(buffer: bytearray, at: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `at`: (body, end), or None while it is incomplete."""
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            end = buffer.find(b"\r\n", start)  # no trailers are expected
            return (b"".join(parts), end + 2) if end >= 0 else None
        if len(buffer) < start + size + 2:
            return None
        parts.append(bytes(buffer[start : start + size]))
        at = start + size + 2


class Client:
    """`count` keep-alive connections to host:port, opened `step` at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.connections: list[_Connection] = []

    async def open(self, count: int, step: int = 200) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, count, step):
            opened = await asyncio.gather(
                *(
                    loop.create_connection(_Connection, self.host, self.port)
                    for _ in range(min(step, count - start))
                )
            )
            self.connections.extend(protocol for _, protocol in opened)

    async def replace(self, old: _Connection) -> _Connection:
        """A new connection in place of one the server closed."""
        old.close()
        _, new = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port
        )
        self.connections[self.connections.index(old)] = new
        return new

    async def each(self, request: bytes, step: int = 200) -> list[Answered]:
        """Send `request` once on every connection, `step` at a time; their answers."""
        answers: list[Answered] = []
        for start in range(0, len(self.connections), step):
            batch = self.connections[start : start + step]
            answers += await asyncio.gather(*(c.exchange(request) for c in batch))
        return answers

    def still_open(self) -> int:
        return sum(not c.closed.done() for c in self.connections)

    async def close(self) -> None:
        for connection in self.connections:
            connection.close()
        await asyncio.sleep(0)
        self.connections.clear()


@dataclass
class OpenLoop:
    """One fixed-rate arm's answers: latency from each request's due time, in microseconds."""

    histogram: HdrHistogram = field(repr=False)
    requests: int = 0
    acknowledged: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    late_starts: int = 0  # requests sent more than 5 ms after their due time
    # The server closed an idle connection (uvicorn: after 5 s, `timeout_keep_alive`): found
    # closed before sending, or closed under a request just sent (sent again on a new one).
    reconnects: int = 0
    races: int = 0
    seconds: float = 0.0

    def ms(self, percentile: float) -> float:
        return float(self.histogram.get_value_at_percentile(percentile)) / 1000

    @property
    def max_ms(self) -> float:
        return float(self.histogram.get_max_value()) / 1000


async def offer(
    client: Client,
    requests: Sequence[bytes],
    rate: float,
    ok: bytes | int,
    warmup: float = 2.0,
) -> OpenLoop:
    """Send `requests` at `rate` per second over the client's connections.

    `ok`: the status that acknowledges (HQ: 202), or a body prefix that must follow a 200
    (`_bulk`: b'{"errors":false'). Requests due in the first `warmup` seconds are not timed."""
    loop = asyncio.get_running_loop()
    result = OpenLoop(HdrHistogram(1, 600_000_000, 3))
    idle: collections.deque[_Connection] = collections.deque(
        c for c in client.connections if not c.closed.done()
    )
    freed = asyncio.Event()
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()

    async def one(connection: _Connection, request: bytes, due: float, timed: bool) -> None:
        if connection.closed.done():
            result.reconnects += 1
            connection = await client.replace(connection)
        answer = await connection.exchange(request)
        if answer.status == 0 and not connection.buffer:
            result.races += 1
            connection = await client.replace(connection)
            answer = await connection.exchange(request)
        if answer.status == 0:
            result.failures.append("connection closed")
        else:
            idle.append(connection)
            freed.set()
        good = (
            answer.status == ok
            if isinstance(ok, int)
            else (answer.status == 200 and answer.body.startswith(ok))
        )
        if not good:
            result.refused += 1
            if len(result.failures) < 5:
                result.failures.append(f"{answer.status} {answer.body[:200]!r}")
            return
        result.acknowledged += 1
        if timed:
            result.histogram.record_value(max(1, int((loop.time() - due) * 1e6)))

    t0 = loop.time() + 0.05
    for k, request in enumerate(requests):
        due = t0 + k * interval
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        while not idle:
            freed.clear()
            await freed.wait()
        if loop.time() - due > 0.005:
            result.late_starts += 1
        task = loop.create_task(one(idle.popleft(), request, due, k * interval >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.requests += 1
    while tasks:
        await asyncio.gather(*tasks)
    result.seconds = loop.time() - t0
    return result
