"""AsyncSender: the asyncio twin of `Sender`, delivering from a task with `httpx.AsyncClient`.

The task never blocks the event loop: `send()` only buffers, the buffer's own thread commits to
the disk, and the task's queue work (reading a batch, compressing it, acking it) runs in worker
threads; only the HTTP requests themselves run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Self

import httpx

from .config import AgentConfig
from .diskqueue import DiskQueue
from .sender import _IDLE_SECONDS, DropCallback, _describe, _Queueing

__all__ = ["AsyncSender"]

log = logging.getLogger("logspace.agent")


class AsyncSender(_Queueing):
    """Queues events and delivers them from an asyncio task.

        async with AsyncSender(AgentConfig(token="development")) as sender:
            sender.send(event)      # synchronous: it only queues
            await sender.flush()

    `send()` may also be called from other threads.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        queue: DiskQueue | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_drop: DropCallback | None = None,
    ) -> None:
        super().__init__(config, queue, on_drop)
        self._client = httpx.AsyncClient(transport=transport, timeout=config.timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._progressed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping = False

    async def start(self) -> Self:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="logspace-sender")
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _notify(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._wake.set)

    async def _step(self) -> float | None:
        attempt, wait = await asyncio.to_thread(self._next)
        if attempt is None:
            return wait
        try:
            response = await self._client.put(
                attempt.url,
                content=attempt.body,
                headers=attempt.headers,
                timeout=self._request_timeout(),
            )
        except httpx.HTTPError as error:
            await asyncio.to_thread(self._shipper.failed, attempt, _describe(error))
        else:
            await asyncio.to_thread(
                self._shipper.answered,
                attempt,
                response.status_code,
                response.headers,
                response.content,
            )
        return 0.0

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                wait = await self._step()
            except Exception:
                log.exception("the sender failed; trying again")
                wait = self.config.backoff_max
            self._progressed.set()
            if wait != 0.0:
                limit = _IDLE_SECONDS if wait is None else min(wait, _IDLE_SECONDS)
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limit):
                        await self._wake.wait()

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - as Sender.flush; it also bounds requests
        """Commit the buffer and send everything queued, ignoring batch age; True once nothing
        is left."""
        deadline = time.monotonic() + (self.config.shutdown_timeout if timeout is None else timeout)
        self._flushing(+1)
        try:
            await asyncio.to_thread(self.buffer.commit)
            if self._task is not None and not self._task.done():
                self._wake.set()
                while self._pending() and (left := deadline - time.monotonic()) > 0:
                    self._progressed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await self._progressed.wait()
            else:
                while self._pending() and (left := deadline - time.monotonic()) > 0:
                    await asyncio.to_thread(self.buffer.commit)
                    wait = await self._step()
                    if wait:
                        await asyncio.sleep(min(wait, left))
        finally:
            self._flushing(-1)
        return not self._pending()

    async def close(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - as Sender.close
        """Flush within `timeout`, stop, and release the queue; True if nothing is left (what
        is still buffered is committed first, as in `Sender.close`)."""
        if self._closed:
            return not len(self.queue)
        self._closed = True
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        await self.flush(timeout)
        committed = await asyncio.to_thread(
            self.buffer.close, max(1.0, self._deadline - time.monotonic())
        )
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = len(self.queue)
        if left:
            log.warning(
                "%d event(s) stay queued in %s; they are sent when an agent uses it again",
                left,
                self.queue.path or "memory",
            )
        await self._client.aclose()
        self._release_queue()
        return committed and not left
