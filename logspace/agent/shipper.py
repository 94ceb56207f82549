"""Shipper: batching, retries and poison handling between the queue and HQ, without any I/O.

The sender's loop asks `next_attempt()` for a batch to send, performs the request itself and
hands the answer back to `answered()` (or a transport problem to `failed()`). The shipper acks,
drops or keeps the queued events accordingly and decides when to try next (`wait_time()`).

Given several HQs (`hq_url` with commas), it sends to one and stays with it while it answers;
when it cannot be reached or answers 429, 5xx or a refusal of the agent (401, 403, 404, ...),
the same batch goes to the next HQ at once, and only when every HQ failed in a row does the
shipper back off. A batch sent again to another HQ after a lost answer stores nothing twice:
HQ stores each event under its id.
Keeping the HTTP calls out lets one shipper serve the threaded and the asyncio sender alike,
and lets tests drive it with a fake clock.
"""

from __future__ import annotations

import gzip
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .config import AgentConfig
from .delivery import Outcome, backoff_delay, classify
from .diskqueue import DiskQueue
from .group import Batch

__all__ = ["POISON_ATTEMPTS", "Attempt", "Dropped", "Shipper"]

log = logging.getLogger("logspace.agent")

# A batch answered with 500 this many times in a row is split; a single event is dropped.
POISON_ATTEMPTS = 5

# The agent compresses inside the application's process: level 1 shrinks a batch of request
# events 10.8 times at 0.8 us per event, level 9 (gzip's default) 12.4 times at 4.9 us.
_GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Dropped:
    """An event the agent gave up on, and why.

    `reason` is one of `invalid` (400 INVALID_EVENTS), `refused` (422: Elasticsearch refused
    it), `rejected` (HQ refused it alone, e.g. 413), `poison` (it kept causing 500s) or
    `queue-full` (the queue dropped it to stay within its size).
    """

    body: bytes
    reason: str
    message: str

    @property
    def event(self) -> dict[str, Any] | None:
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to make: where to, the queued events it carries, its body and headers."""

    url: str
    batch: Batch
    body: bytes
    headers: dict[str, str]

    @property
    def rows(self) -> list[tuple[int, bytes]]:
        """The events as (queue id, body), in the body's order."""
        return self.batch.rows


class Shipper:
    def __init__(
        self,
        queue: DiskQueue,
        config: AgentConfig,
        report: Callable[[list[Dropped]], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.queue = queue
        self.config = config
        self._report = report
        self._clock = clock
        self._wall = wall
        self._random = random
        self.gzip = config.gzip
        self.limit = config.batch_max_events
        self.failures = 0
        # The HQ in use (an index into `config.hq_urls`), and how many failed in a row since
        # one last answered.
        self._current = 0
        self._failed_over = 0
        self._suspect = 0
        self._not_before = 0.0
        # While above zero (someone is flushing), batches go out regardless of their age.
        self.flushing = 0

    @property
    def hq_url(self) -> str:
        """The base URL of the HQ in use."""
        urls = self.config.hq_urls
        return urls[self._current % len(urls)]

    def _full(self) -> bool:
        return (
            len(self.queue) >= self.config.batch_max_events
            or self.queue.size_bytes >= self.config.batch_max_bytes
        )

    def due_on_commit(self, alone: bool) -> bool:
        """Whether events just committed to the queue can bring the next batch forward: they
        are `alone` in it (the loop waits for nothing), it is full now, or someone is flushing.
        Otherwise the loop already waits for the oldest event's age, which they do not change."""
        return alone or bool(self.flushing) or self._full()

    def wait_time(self) -> float | None:
        """Seconds until a batch should go out; None while the queue is empty."""
        if not len(self.queue):
            return None
        now = self._clock()
        if now < self._not_before:
            return self._not_before - now
        if self.flushing or self._full():
            return 0.0
        oldest = self.queue.oldest_created()
        if oldest is None:
            return None
        return max(0.0, oldest + self.config.batch_max_age - self._wall())

    def next_attempt(self) -> Attempt | None:
        if self.wait_time() != 0.0:
            return None
        batch = self.queue.peek_batch(self.limit, self.config.batch_max_bytes)
        if not batch.parts:
            return None
        body = batch.array
        headers = {
            "content-type": "application/json",
            "logspace.space-token": self.config.token,
        }
        if self.gzip:
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
            headers["content-encoding"] = "gzip"
        return Attempt(self.hq_url + "/events", batch, body, headers)

    def answered(
        self, attempt: Attempt, status: int, headers: Mapping[str, str], content: bytes
    ) -> Outcome:
        outcome = classify(status, headers, content, len(attempt.batch))
        if outcome.action == "delivered" and not outcome.drops:
            # The common answer: the batch's rows go as they are, no event cut apart.
            self.queue.ack_batch(attempt.batch)
            self._progress()
        elif outcome.action == "delivered":
            rows = attempt.rows
            kept = [seq for i, (seq, _) in enumerate(rows) if i not in outcome.drops]
            self.queue.ack(kept)
            self._drop(rows, outcome.drops, "refused")
            self._progress()
        elif outcome.action == "drop":
            self._drop(attempt.rows, outcome.drops, "invalid")
            self._progress(grow=False)
        elif outcome.action == "split":
            self._split(attempt.rows, outcome.reason)
        elif outcome.action == "uncompress" and self.gzip:
            self.gzip = False
            log.warning("HQ does not accept gzip (%s); sending uncompressed", outcome.reason)
            self._not_before = self._clock()
        elif outcome.action == "retry":
            if outcome.suspect:
                self._suspect += 1
                if self._suspect >= POISON_ATTEMPTS:
                    self._suspect = 0
                    self._split(attempt.rows, outcome.reason, "poison")
                    return outcome
            self._try_elsewhere(attempt, outcome.reason, outcome.retry_after, problem=False)
        else:
            self._try_elsewhere(attempt, outcome.reason, outcome.retry_after, problem=True)
        return outcome

    def failed(self, attempt: Attempt, reason: str) -> None:
        """The request never got an answer (connection refused, timeout, ...)."""
        where = attempt.url.removesuffix("/events")
        self._try_elsewhere(attempt, f"HQ at {where} cannot be reached: {reason}", None, False)

    def _try_elsewhere(
        self, attempt: Attempt, reason: str, retry_after: float | None, problem: bool
    ) -> None:
        """Send the batch to the next HQ at once, if there is one not tried since the last
        answer; else back off."""
        urls = self.config.hq_urls
        if len(urls) > 1 and attempt.url == self.hq_url + "/events":
            self._current = (self._current + 1) % len(urls)
            self._failed_over += 1
            if self._failed_over < len(urls):
                log.warning("events not delivered (%s); trying HQ at %s", reason, self.hq_url)
                self._not_before = self._clock()
                return
        self._failed_over = 0
        self._back_off(reason, retry_after, problem)

    def _drop(self, rows: list[tuple[int, bytes]], drops: Mapping[int, str], why: str) -> None:
        if not drops:
            return
        chosen = [(rows[i], message) for i, message in sorted(drops.items())]
        self.queue.drop([seq for (seq, _), _ in chosen])
        self._report([Dropped(body, why, message) for (_, body), message in chosen])

    def _split(self, rows: list[tuple[int, bytes]], reason: str, why: str = "rejected") -> None:
        if len(rows) == 1:
            self._drop(rows, {0: reason}, why)
            self._progress(grow=False)
        else:
            self.limit = max(1, len(rows) // 2)
            self._not_before = self._clock()

    def _progress(self, *, grow: bool = True) -> None:
        if self.failures or self._failed_over:
            log.info(
                "HQ at %s accepts events again after %d failed attempts",
                self.hq_url,
                self.failures + self._failed_over,
            )
        self.failures = 0
        self._failed_over = 0
        self._suspect = 0
        if grow:
            self.limit = min(self.config.batch_max_events, self.limit * 2)
        self._not_before = self._clock()

    def _back_off(self, reason: str, retry_after: float | None, problem: bool) -> None:
        self.failures += 1
        delay = backoff_delay(
            self.failures, self.config.backoff_initial, self.config.backoff_max, self._random
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._not_before = self._clock() + delay
        queued = len(self.queue)
        if problem:
            # A wrong token or URL never heals by itself: say so loudly, keep the events.
            log.error(
                "HQ refuses this agent (%s); check the HQ URL and space token. "
                "%d events stay queued; trying again in %.1f s",
                reason,
                queued,
                delay,
            )
        else:
            log.warning(
                "events not delivered (%s); %d queued, trying again in %.1f s",
                reason,
                queued,
                delay,
            )
