"""The request body: read with a size limit, gunzipped if sent compressed, and admitted against
the memory budget for work in flight.

The limit applies to the decompressed size and is enforced while reading, so neither a large
body nor a gzip bomb is ever held in memory. Bytes are reserved from the `Admission` budget as
they arrive; when HQ already holds its budget in flight, the request is refused at once with
503 OVERLOADED instead of queueing.

A body streamed in pieces must keep coming: it may take `read_seconds`, plus a second for each
`MIN_BODY_RATE` bytes that arrive (as Apache's mod_reqtimeout has it), else 408 REQUEST_TIMEOUT.
A slow link gets time in proportion to what it sends; a client that stalls, or sends a byte now
and then, does not hold its connection and its reserved bytes for ever.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterable, Mapping
from typing import Final

from logspace.errors import (
    InvalidGzip,
    Overloaded,
    RequestTimeout,
    RequestTooLarge,
    UnsupportedContentEncoding,
)

__all__ = ["MIN_BODY_RATE", "Admission", "Reservation", "read_body", "read_deadline", "read_whole"]

# Bytes a second (as sent, before decompression) a body must keep up once its first
# `read_seconds` are over.
MIN_BODY_RATE: Final = 1024


def read_deadline(started: float, read_seconds: float, received: int) -> float:
    """When a request begun at `started`, of whose body `received` bytes came, must be whole
    (the rule of the module; the protocol keeps it for heads and the bodies it reads)."""
    return started + read_seconds + received / MIN_BODY_RATE


class Admission:
    """Bytes of request bodies in flight in this worker, bounded by `limit`.

    Single-threaded (one event loop), so plain counters suffice.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0

    def check(self, size: int) -> None:
        """Raise `Overloaded` unless `size` more bytes would be admitted now."""
        if self.in_flight + size > self.limit and self.in_flight > 0:
            raise Overloaded(
                "HQ is busy with other requests; send this batch again shortly.",
                {"in-flight-bytes-limit": self.limit},
                retry_after=1,
            )

    def acquire(self, size: int) -> None:
        self.check(size)
        self.in_flight += size
        self.peak = max(self.peak, self.in_flight)

    def release(self, size: int) -> None:
        self.in_flight -= size


class Reservation:
    """Bytes one request holds; released all at once when the request is done."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.size = 0

    def check(self, size: int) -> None:
        self._admission.check(size)

    def take(self, size: int) -> None:
        self._admission.acquire(size)
        self.size += size

    def release(self) -> None:
        self._admission.release(self.size)
        self.size = 0


async def read_body(
    chunks: AsyncIterable[bytes] | bytes,
    headers: Mapping[str, str],
    limit: int,
    reservation: Reservation,
    read_seconds: float,
) -> bytes:
    """The whole (decompressed) body, refused with 413 as soon as it grows past `limit`, and
    with 408 when it comes too slowly (see the module); `chunks` as they arrive, or the body
    when the server has read all of it already."""
    if isinstance(chunks, bytes):
        return read_whole(chunks, headers, limit, reservation)
    body = _opened(headers, limit, reservation)
    started = asyncio.get_running_loop().time()
    received = 0
    pieces = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout_at(read_deadline(started, read_seconds, received)):
                chunk = await anext(pieces)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestTimeout(read_seconds, MIN_BODY_RATE) from None
        received += len(chunk)
        body.add(chunk)
    return body.whole()


def read_whole(
    chunks: bytes, headers: Mapping[str, str], limit: int, reservation: Reservation
) -> bytes:
    """`read_body` of a body the server has read all of already, without a coroutine."""
    gzipped = _accepted(headers, limit, reservation)
    if gzipped:
        body = _Body(limit, reservation, True)
        body.add(chunks)
        return body.whole()
    # What `_Body` does with one plain chunk, without one: a fleet's every request is this.
    _check_size(len(chunks), limit)
    reservation.take(len(chunks))
    return chunks


def _opened(headers: Mapping[str, str], limit: int, reservation: Reservation) -> _Body:
    """The body about to be read, once its headers are found acceptable."""
    return _Body(limit, reservation, _accepted(headers, limit, reservation))


def _accepted(headers: Mapping[str, str], limit: int, reservation: Reservation) -> bool:
    """Check a body's headers before it is read; whether it comes gzipped."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise UnsupportedContentEncoding(
            f"Content-Encoding '{encoding}' is not supported; send gzip or an uncompressed body.",
            {"content-encoding": encoding},
        )
    declared = headers.get("content-length", "")
    # isascii: str.isdigit() also takes digits int() refuses, such as "²".
    if declared.isascii() and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        # Before the first read, so a client waiting on `Expect: 100-continue` is refused
        # without sending the body (the bytes are taken as they arrive, below).
        reservation.check(int(declared))
    return encoding.endswith("gzip")


class _Body:
    """A body as its chunks arrive: within the limit, reserved, gunzipped if need be."""

    __slots__ = ("_gunzip", "_limit", "_parts", "_reservation", "_size")

    def __init__(self, limit: int, reservation: Reservation, gzipped: bool) -> None:
        self._limit = limit
        self._reservation = reservation
        self._gunzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        gunzip = self._gunzip
        pieces = [chunk] if gunzip is None else _inflate(gunzip, chunk, self._limit - self._size)
        for piece in pieces:
            self._size += len(piece)
            _check_size(self._size, self._limit)
            self._reservation.take(len(piece))
            self._parts.append(piece)

    def whole(self) -> bytes:
        if self._gunzip is not None and not self._gunzip.eof:
            raise InvalidGzip("The gzip body ends before the end of its compressed stream.", {})
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)


def _inflate(gunzip: zlib._Decompress, chunk: bytes, room: int) -> list[bytes]:
    """Decompress `chunk`, producing at most `room + 1` bytes so a bomb never unfolds."""
    if gunzip.eof:
        if chunk.strip(b"\0"):
            raise InvalidGzip("The body has data after the end of its gzip stream.", {})
        return []
    try:
        piece = gunzip.decompress(chunk, room + 1)
    except zlib.error as error:
        raise InvalidGzip(f"The body is not a valid gzip stream: {error}.", {}) from None
    if gunzip.eof and gunzip.unused_data.strip(b"\0"):
        raise InvalidGzip("The body has data after the end of its gzip stream.", {})
    return [piece]


def _check_size(size: int, limit: int) -> None:
    """A body of `size` bytes (so far, decompressed) must stay within `limit`."""
    if size > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than {limit} bytes; send fewer events per request.",
        {"max-body-bytes": limit},
    )
