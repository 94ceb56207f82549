"""Figure f3-floor, for information: what the fleet's requests cost an HTTP server that does
nothing with them.

A raw ASGI app under uvicorn (httptools and uvloop, as HQ runs) reads each body and answers
202 (`bench.apps:null_events`). It is loaded as HQ's arm of f3 is: the same wrk script, batches,
connections, warm-up and window, once per round, after the rounds. Its CPU per event is the
part of f3 that the server and the kernel take on this box for any app. The rest is HQ's own
work. HQ answers `PUT /events` with its own protocol, without the ASGI cycle, so its floor is a
little lower than this one.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import wrk
from .load import LoadError
from .overhead import Server
from .procs import cpu_seconds
from .report import Figure

if TYPE_CHECKING:
    from .fleet import FleetBench

NAME = "CPU per event of a do-nothing ASGI app (uvicorn) answering 202 to the same fleet"
RATIO_NAME = "f3 / f3-floor, round by round: HQ's CPU per event over the do-nothing server's"


async def floor(run: FleetBench) -> None:
    plan = run.plan
    values: list[float] = []
    failed: list[str] = []
    for round_ in range(plan.pairs):
        try:
            us = await _measure(run, plan.seconds, plan.warmup)
        except (LoadError, RuntimeError, OSError) as error:
            failed.append(f"round {round_ + 1}: {error}")
            run.say(f"  f3-floor round {round_ + 1}: not measured: {error}")
            continue
        values.append(us)
        run.say(f"  f3-floor round {round_ + 1}: {us:5.1f} us/event")
    if values:
        run.figures.append(Figure("f3-floor", NAME, values, "", unit="us", gated=False))
        f3 = next((f for f in run.figures if f.key == "f3" and f.measured), None)
        if f3 is not None:
            # The floor moves with the machine (5.3-6.6 us on 30 Nov's box, 10.8 on 1 Dec's):
            # f3 over it is what compares from box to box. Rounds paired in order when both
            # measured every round; else (a round dropped, pairs unknown) the medians'.
            if len(f3.values) == len(values):
                ratios = [h / f for h, f in zip(f3.values, values, strict=True)]
            else:
                ratios = [f3.median / statistics.median(values)]
            run.figures.append(Figure("f3/floor", RATIO_NAME, ratios, "", gated=False))
    else:
        why = "; ".join(failed) or "no round"
        run.figures.append(Figure.not_measured("f3-floor", NAME, why, unit="us", gated=False))


async def _measure(run: FleetBench, seconds: int, warmup: int) -> float:
    """One arm: the server's CPU-us per event acknowledged in the steady window."""
    with tempfile.TemporaryDirectory() as work:
        server = await asyncio.to_thread(Server, "null", {}, Path(work) / "server.log")
        try:
            config = run.config("hq")
            load = asyncio.create_task(
                asyncio.to_thread(
                    wrk.run, server.url, config, run.plan.connections, warmup + seconds + 1
                )
            )
            # The window in whole buckets of the tally (0.1 s), CPU read at its edges.
            await asyncio.sleep(warmup + 0.3)
            start = round(time.monotonic() + 0.1, 1)
            await asyncio.sleep(start - time.monotonic())
            cpu_start = cpu_seconds(server.pid)
            end = start + seconds
            await asyncio.sleep(end - time.monotonic())
            cpu_end = cpu_seconds(server.pid)
            result = await load
        finally:
            await asyncio.to_thread(server.stop)
    if result.socket_errors or result.refused:
        raise LoadError(f"{result.refused} requests refused, socket errors {result.errors}")
    events = result.events_between(start, end)
    if events <= 0:
        raise LoadError("nothing was acknowledged in the steady window")
    return 1e6 * (cpu_end - cpu_start) / events
