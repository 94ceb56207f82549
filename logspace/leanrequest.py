"""A small `PUT /events` read straight from the bytes that brought it.

`HQProtocol` hands the bytes of each read to uvicorn's parser (httptools), which calls back
into Python for the request's start, its URL, every header, the body and its end: about a
tenth of what a fleet's request of a few events costs HQ. Most such requests arrive whole in
one read, in a shape simple enough to read at once. `lean_request` (in C,
logspace/fastpath/_leanrequest.h, which says exactly what it takes) reads those into what the
callbacks would have gathered: the URL, the headers as uvicorn's `on_header` keeps them (names
in lower case, in order) and the body; and the headers by name, as HQ looks them up (str, the
first of each name: `app._headers` of the scope). Anything it is not sure to read as httptools would
(another method, path or version, a header httptools gives a meaning of its own, a byte out of
the printable range, a body not all there, more than one request) it declines with None, and
the bytes go to httptools. tests/test_leanrequest.py holds the two readings to each other, and
`make fuzz` searches for a difference. Without the C extension every request is declined.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["AVAILABLE", "LeanRead", "lean_request"]

# (url, headers, headers by name, body)
LeanRead = tuple[bytes, list[tuple[bytes, bytes]], dict[str, str], bytes]

lean_request: Callable[[bytes, int], LeanRead | None]
try:
    from logspace.fastpath._transcode import lean_request
except ImportError:  # pragma: no cover - no C compiler: httptools reads every request

    def lean_request(data: bytes, limit: int) -> LeanRead | None:
        return None


AVAILABLE = lean_request.__module__ != __name__
