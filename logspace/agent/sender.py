"""Senders: take events at memory speed, queue them durably, deliver them to HQ in the background.

`Sender` delivers from a thread with a blocking `httpx.Client`; `AsyncSender` (in
`asyncsender.py`) from an asyncio task with `httpx.AsyncClient`. Both share everything else
(`_Queueing`): `send()` checks the event with HQ's rules, stamps the configured `system` and
`marker`, and appends it to a `Buffer` in memory, doing no I/O; the buffer's thread commits it
to the `DiskQueue` in groups; a `Shipper` decides batching, retries and drops. So they behave
identically.

Delivery is at least once to HQ and exactly once into Elasticsearch: HQ stores each event under
its id, so a batch re-sent after a lost answer stores nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from .buffer import Buffer
from .builder import Event, encode_event
from .config import KEEP_ALIVE_SECONDS, AgentConfig
from .diskqueue import DiskQueue, QueueStats
from .draft import Draft, SendDraft, Stamp, encode_drafts
from .shipper import Attempt, Dropped, Shipper

__all__ = ["DropCallback", "Sender"]

log = logging.getLogger("logspace.agent")

DropCallback = Callable[[list[Dropped]], None]

# Even with nothing to do, the loop looks at the queue this often.
_IDLE_SECONDS = 60.0


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Queueing:
    """What both senders share: encoding, stamping, buffering, queueing and reporting drops."""

    def __init__(
        self, config: AgentConfig, queue: DiskQueue | None, on_drop: DropCallback | None
    ) -> None:
        self.config = config
        self._owns_queue = queue is None
        self.queue = (
            queue
            if queue is not None
            else DiskQueue(
                config.queue_path,
                max_bytes=config.queue_max_bytes,
                when_full=config.queue_full_policy,
                group_events=config.batch_max_events,
                group_bytes=config.batch_max_bytes,
            )
        )
        self._on_drop = on_drop
        self._configured = config
        self._shipper = Shipper(self.queue, config, self._report)
        self.buffer = Buffer(
            self.queue,
            max_bytes=config.buffer_max_bytes,
            interval=config.commit_interval,
            group_events=config.batch_max_events,
            group_bytes=config.batch_max_bytes,
            when_full=self.queue.when_full,
            committed=self._committed,
            report=self._report,
            encode_drafts=self._encode_drafts,
        )
        self._flushing_lock = threading.Lock()
        self._deadline: float | None = None
        self._final_stats: QueueStats | None = None

    @property
    def stats(self) -> QueueStats:
        """Events enqueued (accepted by `send`), sent and dropped since the queue file was
        created, and queued now, `buffered` of them in memory (after `close()`: as they were
        then)."""
        if self._final_stats is not None:
            return self._final_stats
        return self.buffer.stats()

    def set_batch_max_age(self, seconds: float | None) -> None:
        """Let events wait at most `seconds` for their batch (an order's `commit-max-seconds`);
        None restores the configured `batch_max_age`."""
        age = self._configured.batch_max_age if seconds is None else seconds
        if age != self.config.batch_max_age:
            self.config = self._shipper.config = self._configured.replace(batch_max_age=age)
            self._notify()  # a batch may be due at once now

    def _pending(self) -> int:
        """Events not delivered yet: in the queue or still in the buffer."""
        return len(self.queue) + len(self.buffer)

    def _release_queue(self) -> None:
        self._final_stats = self.queue.stats()
        if self._owns_queue:
            self.queue.close()

    def send(self, event: Mapping[str, Any]) -> None:
        """Check and buffer one event, without any I/O; `InvalidEvent` if HQ would refuse it."""
        self.buffer.put(encode_event(self._stamp(event)))

    @property
    def send_draft(self) -> SendDraft:
        """`send_draft(build, values, size)` buffers the draft of an event an agent of this
        library makes (see `draft.py`): the buffer's thread builds, stamps, encodes and checks
        it, with the rest of its group. (The buffer's own method: the agents call it in every
        request and logging call, so no call of ours in between.)"""
        return self.buffer.put_draft

    def _encode_drafts(self, drafts: Sequence[Draft]) -> list[bytes | Dropped]:
        return encode_drafts(drafts, Stamp(self.config.system, self.config.marker))

    def _stamp_built(self, event: Event) -> Event:
        """The configured `system` and default `marker`, on an event nobody else holds."""
        return Stamp(self.config.system, self.config.marker)(event)

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        # All checked before any is buffered: an invalid one refuses the lot.
        for body in [encode_event(self._stamp(event)) for event in events]:
            self.buffer.put(body)

    def _stamp(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        system, marker = self.config.system, self.config.marker
        if system is None and (marker is None or "marker" in event):
            return event
        return self._stamp_built(dict(event))

    def _report(self, dropped: list[Dropped]) -> None:
        reasons = sorted({d.reason for d in dropped})
        log.warning(
            "dropped %d event(s) for good (%s); first: %s",
            len(dropped),
            ", ".join(reasons),
            dropped[0].message,
        )
        if self._on_drop is not None:
            try:
                self._on_drop(dropped)
            except Exception:
                # A broken callback must not stop delivery of everything else.
                log.exception("the on_drop callback failed")

    def _next(self) -> tuple[Attempt | None, float | None]:
        """The next request to make, else how long to wait (None: until woken)."""
        attempt = self._shipper.next_attempt()
        return attempt, None if attempt is not None else self._shipper.wait_time()

    def _request_timeout(self) -> float:
        if self._deadline is None:
            return self.config.timeout
        return max(0.05, min(self.config.timeout, self._deadline - time.monotonic()))

    def _flushing(self, amount: int) -> None:
        with self._flushing_lock:
            self._shipper.flushing += amount

    def _committed(self, alone: bool) -> None:
        # Woken only when the plan can change: a group commit every few tens of milliseconds
        # would otherwise wake the loop each time (for AsyncSender, the application's event
        # loop) to find it has nothing to send yet.
        if self._shipper.due_on_commit(alone):
            self._notify()

    def _notify(self) -> None:
        raise NotImplementedError  # pragma: no cover - each sender wakes its own loop


class Sender(_Queueing):
    """Queues events and delivers them from a background thread.

        with Sender(AgentConfig(token="development")) as sender:
            sender.send(EventBuilder("demo/hello").string("greeting", "hi").build())

    Leaving the block flushes for at most `config.shutdown_timeout` seconds; what is left
    stays queued on disk for the next start. Without `start()` (or the `with` block), `flush()`
    delivers in the calling thread.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        queue: DiskQueue | None = None,
        transport: httpx.BaseTransport | None = None,
        on_drop: DropCallback | None = None,
    ) -> None:
        super().__init__(config, queue, on_drop)
        self._client = httpx.Client(
            transport=transport,
            timeout=config.timeout,
            limits=httpx.Limits(keepalive_expiry=KEEP_ALIVE_SECONDS),
        )
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="logspace-sender", daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _notify(self) -> None:
        self._wake.set()

    def _step(self) -> float | None:
        """One request if a batch is due; else how long to wait (None: until woken)."""
        attempt, wait = self._next()
        if attempt is None:
            return wait
        try:
            response = self._client.put(
                attempt.url,
                content=attempt.body,
                headers=attempt.headers,
                timeout=self._request_timeout(),
            )
        except httpx.HTTPError as error:
            self._shipper.failed(attempt, _describe(error))
        else:
            self._shipper.answered(
                attempt, response.status_code, response.headers, response.content
            )
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self._step()
            except Exception:
                # E.g. a full disk; the events are safe in the queue, so keep going.
                log.exception("the sender failed; trying again")
                wait = self.config.backoff_max
            with self._progress:
                self._progress.notify_all()
            if wait != 0.0:
                self._wake.wait(_IDLE_SECONDS if wait is None else min(wait, _IDLE_SECONDS))

    def flush(self, timeout: float | None = None) -> bool:
        """Commit the buffer and send everything queued, ignoring batch age; True once
        nothing is left.

        Backoff still applies, so with HQ down this returns False after `timeout`
        (default `config.shutdown_timeout`) and the events stay queued.
        """
        deadline = time.monotonic() + (self.config.shutdown_timeout if timeout is None else timeout)
        self._flushing(+1)
        try:
            self.buffer.commit()
            if self._thread is not None and self._thread.is_alive():
                self._wake.set()
                with self._progress:
                    while self._pending() and (left := deadline - time.monotonic()) > 0:
                        self._progress.wait(left)
            else:
                while self._pending() and (left := deadline - time.monotonic()) > 0:
                    self.buffer.commit()
                    wait = self._step()
                    if wait:
                        time.sleep(min(wait, left))
        finally:
            self._flushing(-1)
        return not self._pending()

    def close(self, timeout: float | None = None) -> bool:
        """Flush within `timeout`, stop, and release the queue; True if nothing is left.

        Whatever is still buffered is committed to the queue before the sender stops (taking
        at least a second for it even when `timeout` has run out: a crash would lose it)."""
        if self._closed:
            return not len(self.queue)
        self._closed = True
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        self.flush(timeout)
        committed = self.buffer.close(max(1.0, self._deadline - time.monotonic()))
        self._stop.set()
        self._wake.set()
        stopped = True
        if self._thread is not None:
            # A request in flight is bounded by the deadline (see _request_timeout).
            self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)
            stopped = not self._thread.is_alive()
        left = len(self.queue)
        if left:
            log.warning(
                "%d event(s) stay queued in %s; they are sent when an agent uses it again",
                left,
                self.queue.path or "memory",
            )
        if stopped:
            self._client.close()
            self._release_queue()
        return committed and not left
