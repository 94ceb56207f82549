"""A small `PUT /events` read straight from the bytes that brought it. Pure.

`HQProtocol` hands the bytes of each read to uvicorn's parser (httptools), which calls back
into Python for the request's start, its URL, every header, the body and its end: about a
tenth of what a fleet's request of a few events costs HQ. Most such requests arrive whole in
one read, in a shape simple enough to read at once. `lean_request` reads those; anything it is
not sure to read exactly as httptools would (another method or path, another HTTP version, a
header it would treat specially, a byte out of the plain printable range, a body that is not
all there, or more than one request) it declines, and the bytes go to httptools as before.
tests/test_leanrequest.py holds the two readings to each other.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["LeanRequest", "lean_request"]


class LeanRequest(NamedTuple):
    """What uvicorn's callbacks would have gathered: the URL, the headers as its `on_header`
    keeps them (names in lower case, in order), and the whole body."""

    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


# The request line, then header lines whose names are tokens (RFC 9110) and whose values are
# printable ASCII with no whitespace at either end, each line ending in CRLF, then a CRLF.
# Anything else (obs-fold, bare LF, tabs, bytes above 0x7e, empty values) is left to httptools.
_HEAD: Final = re.compile(
    rb"PUT (/events|/api/events) HTTP/1\.1\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+: ?[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?\r\n)+)\r\n"
)

# Headers httptools gives a meaning of its own (framing, the connection's fate, upgrades);
# a request that has one goes its way. `connection: keep-alive` is what HTTP/1.1 means anyway.
_SPECIAL: Final = frozenset(
    (b"transfer-encoding", b"expect", b"upgrade", b"connection", b"proxy-connection")
)


def lean_request(data: bytes, limit: int) -> LeanRequest | None:
    """`data` read as exactly one whole `PUT /events` (or `/api/events`) with a
    Content-Length body of at most `limit` bytes; None when it is not that, or not surely."""
    head = _HEAD.match(data)
    if head is None:
        return None
    headers = []
    length = -1
    for line in head[2].split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.lstrip(b" ")
        if name == b"content-length":
            if length >= 0 or not value.isdigit():
                return None
            length = int(value)
        elif name in _SPECIAL and not (name == b"connection" and value.lower() == b"keep-alive"):
            return None
        headers.append((name, value))
    start = head.end()
    if length < 0 or length > limit or len(data) - start != length:
        return None
    return LeanRequest(head[1], headers, data[start:])
