"""A server that does nothing on HQ's own way in (figure f3-floor-lean, bench/fleetfloor.py).

uvicorn's httptools protocol, as `logspace serve` runs it, where a `PUT /events` that
`logspace.leanrequest.lean_request` reads whole is answered 202 without the ASGI cycle, as
`logspace.protocol.HQProtocol` answers it, but with nothing stored: the answers of a turn are
written together every `BURST_SECONDS`, as HQ writes a shared bulk's answers when
Elasticsearch returns it. Its CPU per event is what the server and the kernel take of f3 on
HQ's own path; `bench.apps:null_events` under plain uvicorn (f3-floor) is the ASGI path's.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from logspace.guardedprotocol import response_bytes
from logspace.leanrequest import lean_request
from logspace.protocol import LEAN_MAX_BYTES

# About the time a shared bulk of the fleet's spends in Elasticsearch on this kind of box.
BURST_SECONDS = 0.02
_ACCEPTED = Response(status_code=202)
# A request id of the length HQ writes (32 hex digits).
_REQUEST_ID = "0" * 32


class _Answers:
    """The connections waiting for their 202, written all at once when the burst is due."""

    def __init__(self) -> None:
        self.waiting: list[NullProtocol] = []
        self.timer: asyncio.TimerHandle | None = None

    def add(self, protocol: NullProtocol) -> None:
        self.waiting.append(protocol)
        if self.timer is None:
            self.timer = protocol.loop.call_later(BURST_SECONDS, self.write)

    def write(self) -> None:
        self.timer = None
        waiting, self.waiting = self.waiting, []
        for protocol in waiting:
            if not protocol.transport.is_closing():
                protocol.transport.write(response_bytes(protocol, _ACCEPTED, _REQUEST_ID, True))


_answers = _Answers()


class NullProtocol(HttpToolsProtocol):
    """`uvicorn --http bench.nullprotocol:NullProtocol`: see the module."""

    def data_received(self, data: bytes) -> None:
        # Only between requests, as HQProtocol: a request uvicorn began is left to it.
        between = self.cycle is None or self.cycle.response_complete
        if between and not self.pipeline and lean_request(data, LEAN_MAX_BYTES) is not None:
            _answers.add(self)
            return
        super().data_received(data)
