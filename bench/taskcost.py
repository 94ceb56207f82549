"""What a task and its coroutines cost a request that waits, against a done-callback; a model
outside HQ, for deciding whether answering without a task would pay; never for figures.

`python -m bench.taskcost` makes 170 futures a round (a shared bulk's worth of fleet requests).
Each is awaited by a task through four nested coroutines, as HQ's lean answer awaits the
coalescer (`answer_events` -> `store_events` -> `Writer.write` -> `Coalescer.submit`), or heard
by a done-callback. The futures are resolved after BENCH_TASKCOST_DELAY seconds (0.05: about
the local node's time for a shared bulk) and at once, arms alternated BENCH_TASKCOST_ROUNDS
times (2); it prints the CPU per request of each. Only the waiting costs: the rounds' own work
is the same in both arms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import uvloop

from .countdown import Countdown

_REQUESTS = 170
_ROUNDS = 60
_WARM_UP = 10
_CLEAN: dict[str, Any] = {"errors": False}


# Four frames with a few locals each, as the request's coroutines hold while they wait.
async def _submit(future: asyncio.Future[dict[str, Any]], forget: list[int]) -> dict[str, Any]:
    try:
        return await future
    finally:
        forget.append(1)


async def _write(future: asyncio.Future[dict[str, Any]]) -> tuple[int, int, int] | None:
    started, deadline = time.perf_counter(), 30.0
    first = await _submit(future, [])
    if isinstance(first, dict) and not first.get("errors") and deadline > started:
        return (1, 0, 0)
    return None


async def _store(future: asyncio.Future[dict[str, Any]]) -> tuple[int, int, int] | None:
    reservation = {"size": 1}
    try:
        return await _write(future)
    finally:
        reservation.clear()


async def _answer(future: asyncio.Future[dict[str, Any]], answered: Countdown) -> None:
    state: dict[str, Any] = {"space": "fleet"}
    try:
        await _store(future)
    finally:
        state.clear()
        answered.one()


async def _arm(mode: str, delay: float) -> float:
    """CPU per request, in µs."""
    loop = asyncio.get_running_loop()
    answered = Countdown()
    tasks: set[asyncio.Task[None]] = set()  # as the protocol keeps its requests' tasks
    used = 0.0
    for number in range(_ROUNDS + _WARM_UP):
        started = time.process_time()
        answered.expect(_REQUESTS)
        futures = [loop.create_future() for _ in range(_REQUESTS)]
        for future in futures:
            if mode == "task":
                task = loop.create_task(_answer(future, answered))
                task.add_done_callback(tasks.discard)
                tasks.add(task)
            else:
                future.add_done_callback(lambda _: answered.one())
        await asyncio.sleep(0)
        spent = time.process_time() - started
        await asyncio.sleep(delay)
        started = time.process_time()
        for future in futures:
            future.set_result(_CLEAN)
        await answered.done.wait()
        spent += time.process_time() - started
        if number >= _WARM_UP:
            used += spent
    return used * 1e6 / (_ROUNDS * _REQUESTS)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "arm":  # one arm, in a fresh process
        print(uvloop.run(_arm(sys.argv[2], float(sys.argv[3]))))
        return
    delay = float(os.environ.get("BENCH_TASKCOST_DELAY", "0.05"))
    rounds = int(os.environ.get("BENCH_TASKCOST_ROUNDS", "2"))
    results: dict[tuple[str, float], list[float]] = {}
    for number in range(rounds):
        for mode in ("task", "callback") if number % 2 == 0 else ("callback", "task"):
            for wait in (delay, 0.0):
                command = [sys.executable, "-m", "bench.taskcost", "arm", mode, str(wait)]
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                results.setdefault((mode, wait), []).append(float(output.stdout))
    for (mode, wait), values in sorted(results.items()):
        shown = " ".join(f"{value:.2f}" for value in values)
        print(
            f"{mode:8} answered after {wait * 1000:4.0f} ms: "
            f"{statistics.median(values):.2f} µs of CPU per request ({shown})"
        )


if __name__ == "__main__":
    main()
