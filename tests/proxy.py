"""A TCP proxy in front of Elasticsearch that tests can make slow or unreachable."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Proxy:
    """Forwards 127.0.0.1:<port> to an upstream; `delay` holds every response back that many
    seconds, `refuse` closes new connections at once (Elasticsearch looks down), and so does
    `refuse_next` for that many new connections (a node coming back). `accepted` counts the
    connections it forwarded."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.refuse = False
        self.refuse_next = 0
        self.accepted = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)
        self._loop.close()

    def go_down(self) -> None:
        """Refuse new connections and cut the open ones: Elasticsearch is unreachable."""
        self.refuse = True
        self.drop_connections()

    def drop_connections(self) -> None:
        """Cut open connections, as a restarting Elasticsearch would."""

        def close_all() -> None:
            for writer in list(self._connections):
                writer.close()

        self._loop.call_soon_threadsafe(close_all)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse or self.refuse_next > 0:
            self.refuse_next -= 0 if self.refuse else 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.accepted += 1
        self._connections.update((writer, up_writer))

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, delayed: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if delayed and self.delay:
                        await asyncio.sleep(self.delay)
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))
        self._connections.difference_update((writer, up_writer))


@contextmanager
def proxy_to(url: str) -> Iterator[Proxy]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    proxy = Proxy(host, int(port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
