"""The coalescer: concurrent writes share `_bulk` requests, each still answered on its own.

Every write contributes its events' `_bulk` lines (already encoded) and waits on a future.
A `FlushPolicy` decides when the waiting contributions go out together, as one body; the
response's items are split back by position, so each contribution gets exactly its own
items. What concerns a bulk as a whole (no answer, a timeout, a 5xx for the request) reaches
every contribution in it, as it would have reached each alone; a failure that could be one
contribution's doing (a 4xx for the whole request) is tried again with each contribution
alone, so that one request's problem never becomes another's answer.

A bulk that Elasticsearch holds because an index it writes to has no primary shard (and
cannot get one) is given up by `send` with `Unallocatable`: contributions to that index get
it, the others `HeldUp` (to be sent again at once); for a while afterwards, contributions to
that index go alone, so they hold up nobody else.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from logspace.elastic.client import retryable
from logspace.elastic.flushpolicy import FlushPolicy

__all__ = ["BulkObserver", "Closed", "Coalescer", "HeldUp", "Send", "Unallocatable"]

# (body, deadline on the loop's clock, the bulk's indices) -> the `_bulk` response.
Send = Callable[[bytes, float, Callable[[], list[str]]], Awaitable[dict[str, Any]]]

_CLEAN: Final[dict[str, Any]] = {"errors": False}


class Unallocatable(Exception):
    """Elasticsearch holds the bulk: these indices have no primary shard and cannot get one;
    index -> Elasticsearch's explanation."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__(next(iter(reasons.values())))
        self.reasons = reasons


class HeldUp(Exception):
    """The contribution shared a bulk that another index held; sending it again will do."""


class Closed(Exception):
    """The coalescer has shut down and sends nothing more."""


class BulkObserver(Protocol):
    """Hears of every bulk sent (for the metrics)."""

    def bulk_sent(self, reason: str, events: int, size: int) -> None: ...

    def bulk_waited(self, seconds: float) -> None: ...


# Told that a contribution's lines are now `body[offset:offset + size]` of a shared bulk.
Share = Callable[[bytes, int], None]


@dataclass(eq=False)
class _Contribution:
    lines: bytes  # its lines, or (once in a shared bulk) that bulk's body
    count: int
    deadline: float
    indices: Callable[[], Sequence[str]]
    future: asyncio.Future[dict[str, Any]]
    arrived: float
    share: Share | None
    size: int = 0
    offset: int = 0
    alone: bool = False
    tick: int = 0  # of its deadline (`_Deadlines`)
    _indices: Sequence[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.size = len(self.lines)

    def body(self) -> bytes:
        if self.offset == 0 and self.size == len(self.lines):
            return self.lines
        return self.lines[self.offset : self.offset + self.size]  # going alone after sharing

    def shared(self, body: bytes, offset: int) -> None:
        """Its lines are now a region of `body`: its own copy can go, here and in its writer."""
        self.lines, self.offset = body, offset
        if self.share is not None:
            self.share(body, offset)

    def targets(self) -> Sequence[str]:
        if self._indices is None:
            self._indices = self.indices()
        return self._indices


class Coalescer:
    def __init__(
        self,
        send: Send,
        policy: FlushPolicy,
        observer: BulkObserver | None = None,
        *,
        isolation_seconds: float = 10.0,
    ) -> None:
        self._send = send
        self.policy = policy
        self._observer = observer
        self._isolation = isolation_seconds
        self._waiting: deque[_Contribution] = deque()
        self._events = 0
        self._bytes = 0
        # Shared bulks in flight; those of contributions sent alone are not counted: they
        # wait on an index, and must not keep everybody else waiting too.
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed = False
        # Indices found unallocatable -> until when (loop time) their writes go alone.
        self._stuck: dict[str, float] = {}
        self._deadlines = _Deadlines()
        self._loop: asyncio.AbstractEventLoop | None = None

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop, whose clock deadlines are on. `asyncio.get_running_loop`
        makes a system call each time on Python 3.11 (it checks the process id): about 2 % of
        a fleet's small write, twice. A coalescer works on one loop at a time, so it asks
        only when the loop it knows is not running."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def submit(
        self,
        body: bytes,
        count: int,
        deadline: float,
        indices: Callable[[], Sequence[str]],
        share: Share | None = None,
    ) -> dict[str, Any]:
        """The `_bulk` response for these `count` events' lines alone (`errors` and their
        `items`, in order); raises what the bulk raised, `TimeoutError` at `deadline`,
        `Unallocatable` / `HeldUp` (see the module), `Closed` after shutdown. `share` hears
        where the lines are once they go in a shared bulk, so the writer can drop its copy."""
        return await self.contribute(body, count, deadline, indices, share)

    def contribute(
        self,
        body: bytes,
        count: int,
        deadline: float,
        indices: Callable[[], Sequence[str]],
        share: Share | None = None,
    ) -> asyncio.Future[dict[str, Any]]:
        """`submit` without the coroutine: the future gets what `submit` returns or raises
        (`Closed` is raised at once). For a caller that hears of the answer in a callback:
        a fleet's small write is cheaper so than resuming coroutines (`app.HQApp`)."""
        if self._closed:
            raise Closed()
        loop = self.running_loop()
        contribution = _Contribution(
            body, count, deadline, indices, loop.create_future(), loop.time(), share
        )
        del body  # once shared, the contribution holds the shared body instead
        if self._stuck and self._touches_stuck(contribution, loop.time()):
            contribution.alone = True
            self._start([contribution], "alone")
        elif self.policy.large(count, contribution.size) and not self._closing:
            contribution.alone = True
            self._start([contribution], "large")
        else:
            self._waiting.append(contribution)
            self._events += count
            self._bytes += contribution.size
            self._consider(loop)
        # At the deadline the future fails with TimeoutError: if still waiting, it is left out
        # of its bulk. Answered earlier, it is forgotten then (`_settle`).
        contribution.tick = self._deadlines.watch(contribution.future, deadline, loop)
        return contribution.future

    async def close(self) -> None:
        """Send everything waiting now and wait until every bulk is answered; what is
        submitted meanwhile goes at once too, and after that, nothing."""
        self._closing = True
        self._consider()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closed = True

    # -- flushing ----------------------------------------------------------------

    def _consider(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Send what the policy says to send now; set the timer for what must wait."""
        if loop is None:
            loop = self.running_loop()
        while self._waiting:
            waited = loop.time() - self._waiting[0].arrived
            decision = self.policy.decide(
                self._events, self._bytes, waited, self.in_flight, closing=self._closing
            )
            if decision.flush is None:
                # The wait is the oldest contribution's, so a timer set for it stands while
                # others join (one timer per bulk, not one per request).
                if decision.after is not None and self._timer is None:
                    self._timer = loop.call_later(decision.after, self._on_timer)
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush(decision.flush)

    def _on_timer(self) -> None:
        self._timer = None
        self._consider()

    def _flush(self, reason: str) -> None:
        taken = self.policy.take((c.count, c.size) for c in self._waiting)
        batch = []
        for _ in range(taken):
            contribution = self._waiting.popleft()
            self._events -= contribution.count
            self._bytes -= contribution.size
            if not contribution.future.done():  # else its writer stopped waiting
                batch.append(contribution)
        if batch:
            self._start(batch, reason)

    def _start(self, batch: list[_Contribution], reason: str) -> None:
        shared = not batch[0].alone
        if shared:
            self.in_flight += 1
        if self._observer is not None:
            now = self.running_loop().time()
            self._observer.bulk_sent(
                reason, sum(c.count for c in batch), sum(c.size for c in batch)
            )
            for contribution in batch:
                self._observer.bulk_waited(now - contribution.arrived)
        task = asyncio.create_task(self._run(batch, shared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Contribution], shared: bool) -> None:
        if len(batch) == 1:
            body = batch[0].body()
        else:
            # One copy of the lines in flight, not two: each contribution keeps its region.
            body = b"".join([c.body() for c in batch])
            offset = 0
            for contribution in batch:
                contribution.shared(body, offset)
                offset += contribution.size
        deadline = max(c.deadline for c in batch)

        def indices() -> list[str]:
            return list(dict.fromkeys(i for c in batch for i in c.targets()))

        try:
            response = await self._send(body, deadline, indices)
        except Unallocatable as stuck:
            self._held(batch, stuck)
        except Exception as error:
            if len(batch) > 1 and not retryable(error):
                # Perhaps one contribution's doing: each goes again alone, to learn whose.
                for contribution in batch:
                    contribution.alone = True
                    self._start([contribution], "alone")
            else:
                self._fail(batch, error)
        except BaseException as error:  # cancelled: nobody may wait forever
            self._fail(batch, error)
            raise
        else:
            self._split(batch, response)
        finally:
            if shared:
                self.in_flight -= 1
            self._consider()

    # -- answers -------------------------------------------------------------------

    def _settle(self, contribution: _Contribution, answer: dict[str, Any] | BaseException) -> None:
        """Give a contribution still waiting its answer (a response, or an error to raise)."""
        future = contribution.future
        if future.done():  # timed out, or its writer stopped waiting
            return
        self._deadlines.forget(future, contribution.tick)
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    def _fail(self, batch: list[_Contribution], error: BaseException) -> None:
        for contribution in batch:
            self._settle(contribution, error)

    def _split(self, batch: list[_Contribution], response: dict[str, Any]) -> None:
        """Each contribution's own part of the response, by position."""
        if not response.get("errors"):
            for contribution in batch:
                self._settle(contribution, _CLEAN)
            return
        items = response.get("items", [])
        total = sum(c.count for c in batch)
        if len(items) != total:
            self._fail(
                batch, ValueError(f"bulk response has {len(items)} items for {total} actions")
            )
            return
        start = 0
        for contribution in batch:
            part = items[start : start + contribution.count]
            start += contribution.count
            self._settle(contribution, {"errors": True, "items": part})

    # -- indices that hold bulks -------------------------------------------------

    def _held(self, batch: list[_Contribution], stuck: Unallocatable) -> None:
        until = self.running_loop().time() + self._isolation
        self._stuck.update(dict.fromkeys(stuck.reasons, until))
        for contribution in batch:
            if contribution.future.done():
                continue
            hit = [i for i in contribution.targets() if i in stuck.reasons]
            if hit:
                self._settle(contribution, Unallocatable({hit[0]: stuck.reasons[hit[0]]}))
            else:
                self._settle(
                    contribution, HeldUp("another index kept the bulk from being answered")
                )

    def _touches_stuck(self, contribution: _Contribution, now: float) -> bool:
        for index, until in list(self._stuck.items()):
            if until < now:
                del self._stuck[index]
        return any(i in self._stuck for i in contribution.targets())


# Deadlines are watched in ticks of this many seconds: a contribution fails at most a tick
# after its deadline.
_TICK: Final = 0.01


class _Deadlines:
    """Futures that fail with `TimeoutError` at their deadline unless done before, with one
    timer per tick that has deadlines in it rather than one per future: a timer set and
    cancelled cost a fleet's small write about 3 µs, a tenth of its way through the
    coalescer (`asyncio.timeout_at` costs several times that)."""

    def __init__(self) -> None:
        self._ticks: dict[int, set[asyncio.Future[dict[str, Any]]]] = {}

    def watch(
        self,
        future: asyncio.Future[dict[str, Any]],
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> int:
        """Fail `future` at `deadline` (`loop`'s time); returns its tick, for `forget`."""
        tick = math.ceil(deadline / _TICK)
        futures = self._ticks.get(tick)
        if futures is None:
            futures = self._ticks[tick] = set()
            loop.call_at(tick * _TICK, self._expire, tick)
        futures.add(future)
        return tick

    def forget(self, future: asyncio.Future[dict[str, Any]], tick: int) -> None:
        futures = self._ticks.get(tick)
        if futures is not None:
            futures.discard(future)

    def _expire(self, tick: int) -> None:
        for future in self._ticks.pop(tick, ()):
            if not future.done():
                future.set_exception(TimeoutError())
