"""A flush asked for many times in one turn of the event loop runs once, after the turn."""

from __future__ import annotations

import asyncio

from logspace.ops.deferredflush import DeferredFlush


def counting() -> tuple[DeferredFlush, list[int]]:
    runs: list[int] = []
    return DeferredFlush(lambda: runs.append(1)), runs


def test_off_a_loop_the_flush_runs_at_once() -> None:
    flush, runs = counting()
    flush.request()
    flush.request()
    assert len(runs) == 2


def test_one_turn_asks_many_times_and_gets_one_flush_after_it() -> None:
    flush, runs = counting()

    async def turn() -> int:
        for _ in range(100):
            flush.request()
        during = len(runs)
        await asyncio.sleep(0)  # the turn ends
        return during

    assert asyncio.run(turn()) == 0
    assert len(runs) == 1


def test_each_turn_gets_its_own_flush() -> None:
    flush, runs = counting()

    async def turns() -> None:
        for _ in range(3):
            flush.request()
            flush.request()
            await asyncio.sleep(0)

    asyncio.run(turns())
    assert len(runs) == 3


def test_a_loop_closed_before_its_flush_holds_nothing_up() -> None:
    flush, runs = counting()
    loop = asyncio.new_event_loop()

    async def ask_and_stop() -> None:
        flush.request()  # due at the end of the turn
        loop.stop()  # the loop stops with this turn, before the flush's

    asked = loop.create_task(ask_and_stop())
    loop.run_forever()
    loop.close()
    assert asked.done()
    assert runs == []
    flush.request()  # off a loop now: at once, not waiting for the closed one
    assert runs == [1]
