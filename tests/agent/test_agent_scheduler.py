"""Running collectors at intervals, on a fake clock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import pytest

from logspace.agent import Cron, EventBuilder, MemorySink, Scheduler
from logspace.agent.builder import Event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counting:
    def __init__(self, agent_id: str, clock: Clock | None = None, takes: float = 0.0) -> None:
        self.agent_id = agent_id
        self.clock = clock
        self.takes = takes

    def collect(self) -> Iterable[Event]:
        if self.clock:
            self.clock.now += self.takes
        return [EventBuilder("count", self.agent_id).build()]


def ran(sink: MemorySink) -> list[str]:
    return [e["agent-id"] for e in sink.events]


def test_each_agent_runs_at_its_own_interval() -> None:
    clock, sink = Clock(), MemorySink()
    scheduler = Scheduler(sink, clock=clock)
    scheduler.add(Counting("fast"), 1.0)
    scheduler.add(Counting("slow"), 3.0)

    for _ in range(7):
        scheduler.run_pending()
        clock.now += 1.0

    assert ran(sink).count("fast") == 7
    assert ran(sink).count("slow") == 3
    assert scheduler.runs("fast") == 7


def test_run_pending_says_how_long_until_the_next_agent_is_due() -> None:
    clock = Clock()
    scheduler = Scheduler(MemorySink(), clock=clock)
    assert scheduler.run_pending() is None
    scheduler.add(Counting("a"), 10.0, delay=4.0)
    assert scheduler.run_pending() == 4.0


def test_a_slow_agent_keeps_to_its_grid_and_skips_missed_turns() -> None:
    clock, sink = Clock(), MemorySink()
    scheduler = Scheduler(sink, clock=clock)
    scheduler.add(Counting("slow", clock, takes=2.5), 1.0)

    wait = scheduler.run_pending()

    assert ran(sink) == ["slow"]
    assert wait == pytest.approx(0.5)  # due at 103, the first grid point after 102.5


def test_remove_and_reschedule_take_effect_at_once() -> None:
    clock, sink = Clock(), MemorySink()
    scheduler = Scheduler(sink, clock=clock)
    scheduler.add(Counting("a"), 1.0)
    scheduler.add(Counting("b"), 1.0)
    scheduler.run_pending()

    assert scheduler.remove("b")
    scheduler.reschedule("a", 5.0)
    clock.now += 1.0
    scheduler.run_pending()
    clock.now += 4.0
    scheduler.run_pending()

    assert ran(sink) == ["a", "b", "a"]
    assert scheduler.intervals == {"a": 5.0}


def test_a_failing_agent_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing:
        agent_id = "failing"

        def collect(self) -> Iterable[Event]:
            raise OSError("mount vanished")

    sink = MemorySink()
    scheduler = Scheduler(sink)
    scheduler.add(Failing(), 1.0)
    scheduler.add(Counting("fine"), 1.0)

    with caplog.at_level(logging.ERROR):
        scheduler.run_pending()

    assert ran(sink) == ["fine"]
    assert "agent failing failed" in caplog.text


def test_run_with_cycles_returns_once_every_agent_ran_that_often() -> None:
    sink = MemorySink()
    scheduler = Scheduler(sink)
    scheduler.add(Counting("a"), 0.01)
    scheduler.add(Counting("b"), 0.02)

    scheduler.run(cycles=3)

    assert scheduler.runs("a") >= 3
    assert scheduler.runs("b") == 3


def test_start_and_stop_run_it_in_the_background() -> None:
    sink = MemorySink()
    scheduler = Scheduler(sink).start()
    scheduler.add(Counting("a"), 0.01)
    for _ in range(1000):
        if len(sink.events) >= 3:
            break
        time.sleep(0.01)
    scheduler.stop(timeout=10)
    assert len(sink.events) >= 3


def test_intervals_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        Scheduler(MemorySink()).add(Counting("a"), 0)


class Wall:
    """A wall clock that moves with the monotonic one, from a given UTC second."""

    def __init__(self, clock: Clock, start: float) -> None:
        self.clock = clock
        self.offset = start - clock.now

    def __call__(self) -> float:
        return self.clock.now + self.offset


def test_a_cron_schedule_runs_at_each_firing_of_the_wall_clock() -> None:
    clock, sink = Clock(), MemorySink()
    wall = Wall(clock, 1447765555.0)  # 2015-11-17T13:05:55Z
    scheduler = Scheduler(sink, clock=clock, wall=wall)
    scheduler.add(Counting("cron"), Cron.parse("0/10 * * * * ? *"))

    waits = []
    for _ in range(3):
        wait = scheduler.run_pending()
        assert wait is not None
        waits.append(wait)
        clock.now += wait
    scheduler.run_pending()

    assert waits == [5.0, 10.0, 10.0]  # first at :00, then every 10 seconds
    assert scheduler.runs("cron") == 3
    assert ran(sink) == ["cron"] * 3


def test_a_cron_schedule_skips_firings_missed_in_a_stall_and_never_runs_twice_for_one() -> None:
    clock, sink = Clock(), MemorySink()
    wall = Wall(clock, 1447765555.0)
    scheduler = Scheduler(sink, clock=clock, wall=wall)
    slow = Counting("cron", clock, takes=25.0)
    scheduler.add(slow, Cron.parse("0/10 * * * * ? *"))
    clock.now += 5.0

    wait = scheduler.run_pending()  # runs at :00, returns at :25

    assert scheduler.runs("cron") == 1
    assert wait == 5.0  # at :30; :10 and :20 were missed
    wall.offset -= 0.5  # the wall clock is set back a little
    clock.now += wait
    slow.takes = 0.0
    assert scheduler.run_pending() == pytest.approx(10.5)  # ran for :30 (at :29.5); next :40
    assert scheduler.runs("cron") == 2


def test_a_cron_schedule_that_never_fires_again_is_listed_but_never_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    scheduler = Scheduler(MemorySink(), clock=clock, wall=Wall(clock, 1447765555.0))

    scheduler.add(Counting("past"), Cron.parse("0 0 0 1 1 ? 2014"))

    assert scheduler.run_pending() is None
    assert scheduler.intervals == {"past": Cron.parse("0 0 0 1 1 ? 2014")}
    assert "agent past: the schedule '0 0 0 1 1 ? 2014' never fires again" in caplog.text


def test_sigterm_during_a_collection_is_not_taken_for_the_agents_failure() -> None:
    """`logspace agent` turns SIGTERM into an exception wherever the main thread is; inside a
    collection the scheduler must let it through, or the agent logs it and runs on."""
    from logspace.agent.cli import _Terminated

    class Interrupted:
        agent_id = "interrupted"

        def collect(self) -> Iterable[Event]:
            raise _Terminated

    with pytest.raises(_Terminated):
        Scheduler(MemorySink()).collect(Interrupted())
