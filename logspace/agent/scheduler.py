"""Scheduler: runs collectors (agents that produce events when asked) at intervals or by cron.

This is the one place that decides *when* an agent runs. A schedule is an interval in seconds
(from code or the command line) or a `Cron` (from an order of HQ, which the `Controller`
follows by calling `add` and `remove` here, without touching the agents or the senders).
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Protocol, runtime_checkable

from ..cron import Cron
from .builder import Event, InvalidEvent
from .sink import Sink

__all__ = ["Collector", "Schedule", "Scheduler"]

# Seconds between runs, or a cron expression read in the scheduler's time zone.
Schedule = float | Cron

log = logging.getLogger("logspace.agent")


@runtime_checkable
class Collector(Protocol):
    """An agent that produces its events when asked, like the original scheduler agents."""

    @property
    def agent_id(self) -> str: ...

    def collect(self) -> Iterable[Event]: ...


@dataclass
class _Entry:
    collector: Collector
    interval: Schedule
    runs: int = 0
    due: float = 0.0
    generation: int = 0
    # For a cron schedule: the wall-clock time of the planned run.
    fires_at: float = 0.0


class Scheduler:
    """Runs each collector on its schedule and sends its events to `sink`.

    A collector that raises is logged and tried again at its next turn; one slow collector
    delays the others (they share one thread), which keeps resource use predictable. Cron
    schedules follow the wall clock (`wall`) in `zone`, UTC unless given.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        zone: tzinfo = UTC,
    ) -> None:
        self.sink = sink
        self._clock = clock
        self._wall = wall
        self.zone = zone
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._generation = 0
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, collector: Collector, interval: Schedule, *, delay: float = 0.0) -> None:
        """Schedule `collector` (replacing one with the same agent id): every `interval`
        seconds, first after `delay`; or whenever a `Cron` fires, first after `delay`. A cron
        schedule that never fires again keeps the agent listed without running it."""
        if not isinstance(interval, Cron) and not interval > 0:
            raise ValueError(f"interval must be greater than zero, found {interval!r}")
        with self._lock:
            self._generation += 1
            entry = _Entry(collector, interval, generation=self._generation)
            self._entries[collector.agent_id] = entry
            if isinstance(interval, Cron):
                if self._plan(entry, self._wall() + delay):
                    heapq.heappush(self._heap, (entry.due, entry.generation, collector.agent_id))
            else:
                entry.due = self._clock() + delay
                heapq.heappush(self._heap, (entry.due, entry.generation, collector.agent_id))
        self._changed.set()

    def _plan(self, entry: _Entry, after: float) -> bool:
        """Set `due` to the first cron firing after the wall-clock time `after`; False: none."""
        assert isinstance(entry.interval, Cron)
        fires_at = entry.interval.next_timestamp(after, self.zone)
        if fires_at is None:
            log.warning(
                "agent %s: the schedule '%s' never fires again",
                entry.collector.agent_id,
                entry.interval,
            )
            return False
        entry.fires_at = fires_at
        entry.due = self._clock() + (fires_at - self._wall())
        return True

    def reschedule(self, agent_id: str, interval: Schedule) -> None:
        """Change an agent's schedule; an interval's first run is one interval from now."""
        with self._lock:
            entry = self._entries[agent_id]
        self.add(entry.collector, interval, delay=0.0 if isinstance(interval, Cron) else interval)

    def remove(self, agent_id: str) -> bool:
        with self._lock:
            removed = self._entries.pop(agent_id, None) is not None
        self._changed.set()
        return removed

    @property
    def intervals(self) -> dict[str, Schedule]:
        """Each scheduled agent's interval or cron schedule."""
        with self._lock:
            return {agent_id: entry.interval for agent_id, entry in self._entries.items()}

    def runs(self, agent_id: str) -> int:
        """How often the agent has run."""
        with self._lock:
            return self._entries[agent_id].runs

    def collect(self, collector: Collector) -> int:
        """Run one collector now and send its events; returns how many were sent."""
        sent = 0
        try:
            for event in collector.collect():
                try:
                    self.sink.send(event)
                    sent += 1
                except InvalidEvent as error:
                    log.error("agent %s produced %s", collector.agent_id, error)
        except Exception:
            # An agent's failure (a vanished mount, a psutil error) must not stop the others.
            log.exception("agent %s failed", collector.agent_id)
        return sent

    def run_pending(self) -> float | None:
        """Run every collector that is due, each once; returns seconds until the next one is
        due (None: nothing is scheduled)."""
        now = self._clock()
        while True:
            with self._lock:
                self._discard_stale()
                if not self._heap:
                    return None
                due, _, agent_id = self._heap[0]
                if due > now:
                    return max(0.0, due - self._clock())
                heapq.heappop(self._heap)
                entry = self._entries[agent_id]
            self.collect(entry.collector)
            with self._lock:
                if self._entries.get(agent_id) is not entry:
                    continue  # removed or replaced while it ran
                entry.runs += 1
                if isinstance(entry.interval, Cron):
                    # Never twice for one firing, even if the clocks disagree by a little;
                    # after a stall, the firings that were missed are skipped.
                    if not self._plan(entry, max(self._wall(), entry.fires_at)):
                        continue
                else:
                    # Keep to the grid (no drift); after a stall, skip the turns that were missed.
                    missed = math.floor((self._clock() - due) / entry.interval)
                    entry.due = due + entry.interval * (max(missed, 0) + 1)
                heapq.heappush(self._heap, (entry.due, entry.generation, agent_id))

    def _discard_stale(self) -> None:
        while self._heap:
            _, generation, agent_id = self._heap[0]
            entry = self._entries.get(agent_id)
            if entry is not None and entry.generation == generation:
                return
            heapq.heappop(self._heap)

    def run(self, *, cycles: int | None = None) -> None:
        """Run in this thread until `stop()`, or until every agent has run `cycles` times."""
        while not self._stop.is_set():
            self._changed.clear()
            wait = self.run_pending()
            if cycles is not None and self._all_ran(cycles):
                return
            # Woken early by add, remove and stop.
            self._changed.wait(wait)

    def _all_ran(self, cycles: int) -> bool:
        with self._lock:
            return all(entry.runs >= cycles for entry in self._entries.values())

    def start(self) -> Scheduler:
        """Run in a background thread until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="logspace-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop `run()`, whether it runs in the background thread or in another thread."""
        self._stop.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
