"""A scripted stand-in for Elasticsearch's `_bulk` endpoint, served over real HTTP.

Only for testing HQ's retry logic against responses a single real node will not produce on
demand (429 and 503 items); what is stored is always checked against the real node elsewhere.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HEADERS = {"x-elastic-product": "Elasticsearch", "content-type": "application/json"}


class FakeBulk:
    """Answers each `_bulk` with the next scripted status per item (201 once the script ends),
    and records the ids of every request.

    `per_id` scripts by event instead: each time an id is sent it gets the next of its
    statuses, the last holding from then on (201 for ids not scripted), however the events are
    grouped into requests. `delays`
    hold the answers to the first requests back that many seconds each. A request carrying an
    id in `poison` is refused as a whole with 400, as for a body Elasticsearch cannot parse.

    `_field_caps` answers that no property exists, after `field_caps_delay` seconds; the first
    ones answer the statuses of `field_caps_statuses` instead (503: shards not ready, as for
    an index being created). `field_caps_calls` counts them."""

    def __init__(
        self,
        item_statuses: list[list[int]] | None = None,
        request_status: int = 200,
        *,
        per_id: dict[str, list[int]] | None = None,
        delays: list[float] | None = None,
        poison: frozenset[str] = frozenset(),
        field_caps_statuses: list[int] | None = None,
        field_caps_delay: float = 0.0,
    ) -> None:
        self.script = list(item_statuses or [])
        self.request_status = request_status
        self.per_id = {key: list(value) for key, value in (per_id or {}).items()}
        self.delays = list(delays or [])
        self.poison = poison
        self.requests: list[list[str]] = []
        self.field_caps_statuses = list(field_caps_statuses or [])
        self.field_caps_delay = field_caps_delay
        self.field_caps_calls = 0

    async def bulk(self, request: Request) -> Response:
        lines = (await request.body()).splitlines()
        ids = [orjson.loads(line)["create"]["_id"] for line in lines[::2]]
        self.requests.append(ids)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        if self.request_status != 200:
            error = {"error": {"type": "security_exception", "reason": "unable to authenticate"}}
            return Response(orjson.dumps(error), self.request_status, headers=HEADERS)
        if self.poison.intersection(ids):
            error = {"error": {"type": "x_content_parse_exception", "reason": "bad line"}}
            return Response(orjson.dumps(error), 400, headers=HEADERS)
        if self.per_id:
            statuses = [self._next_for(i) for i in ids]
        else:
            statuses = self.script.pop(0) if self.script else [201] * len(ids)
        items = [
            {
                "create": {"status": s}
                | ({} if s < 300 else {"error": {"type": f"e{s}", "reason": "r"}})
            }
            for s in statuses
        ]
        body = {"errors": any(s >= 300 for s in statuses), "items": items}
        return Response(orjson.dumps(body), headers=HEADERS)

    def _next_for(self, event_id: str) -> int:
        script = self.per_id.get(event_id)
        if not script:
            return 201
        # The last status of a script holds for good.
        return script.pop(0) if len(script) > 1 else script[0]

    async def field_caps(self, request: Request) -> Response:
        self.field_caps_calls += 1
        await asyncio.sleep(self.field_caps_delay)
        if self.field_caps_statuses:
            status = self.field_caps_statuses.pop(0)
            error = {"type": "no_shard_available_action_exception", "reason": "not ready"}
            return Response(orjson.dumps({"error": error, "status": status}), status, HEADERS)
        return Response(b'{"indices":[],"fields":{}}', headers=HEADERS)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/_bulk", self.bulk, methods=["POST", "PUT"]),
                Route("/{index}/_field_caps", self.field_caps, methods=["GET"]),
            ]
        )


@contextmanager
def serving(fake: FakeBulk) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app(), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
