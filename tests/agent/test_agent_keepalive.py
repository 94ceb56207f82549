"""The agents' connections to HQ outlive the seconds between batches (docs/agents.md)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logspace.agent import AgentConfig, AsyncSender, EventBuilder, Sender

# Longer than httpx's default keep-alive (5 s), after which it would open a new connection.
PAUSE_SECONDS = 5.5


class Connections(http.server.ThreadingHTTPServer):
    """An HQ that answers 202 over HTTP/1.1 keep-alive and notes, per request, the client's
    port: one port per TCP connection."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ports: list[int] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Connections

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.ports.append(self.client_address[1])
        body = b"{}"
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving() -> Iterator[Connections]:
    server = Connections()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def config(queue_dir: Path, hq: Connections, name: str) -> AgentConfig:
    return AgentConfig(
        token="secret",
        hq_url=f"http://127.0.0.1:{hq.server_address[1]}",
        queue_dir=queue_dir,
        queue_name=name,
        batch_max_age=0.0,
        shutdown_timeout=5.0,
    )


@pytest.mark.anyio
async def test_both_senders_reuse_their_connection_across_batches_seconds_apart(
    tmp_path: Path,
) -> None:
    event = EventBuilder("demo/keepalive").build()
    with serving() as threaded_hq, serving() as async_hq:
        async with AsyncSender(config(tmp_path, async_hq, "async")) as async_sender:
            with Sender(config(tmp_path, threaded_hq, "threaded")) as sender:
                for pause in (PAUSE_SECONDS, 0.0):
                    sender.send(event)
                    async_sender.send(event)
                    assert sender.flush(10)
                    assert await async_sender.flush(10)
                    await asyncio.sleep(pause)

    # Two batches each, over one connection each.
    assert len(threaded_hq.ports) == 2
    assert len(set(threaded_hq.ports)) == 1
    assert len(async_hq.ports) == 2
    assert len(set(async_hq.ports)) == 1
