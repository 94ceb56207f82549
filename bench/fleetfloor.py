"""Figures f3-floor and f3-floor-lean, for information: what the fleet's requests cost an HTTP
server that does nothing with them.

f3-floor: a raw ASGI app under uvicorn (httptools and uvloop, as HQ runs) reads each body and
answers 202 (`bench.apps:null_events`). f3-floor-lean: the same server on HQ's own way in
(`bench/nullprotocol.py`): the request read by HQ's C reader, no ASGI cycle, the 202s written
in bursts as HQ writes a shared bulk's answers. Each is loaded as HQ's arm of f3 is: the same
wrk script, batches, connections, warm-up and window, once per round, after the rounds,
alternated. f3-floor-lean is the part of f3 that the server and the kernel take on this box
on HQ's path; the rest is HQ's own work (checking, storing, logging, counting). f3-floor is
what any ASGI app pays before it does anything.
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
LEAN_NAME = (
    "CPU per event of a do-nothing server on HQ's own way in (its protocol, answers in bursts)"
)
LEAN_RATIO_NAME = "f3 / f3-floor-lean, round by round: HQ's CPU per event over that server's"


async def floor(run: FleetBench) -> None:
    plan = run.plan
    values: dict[str, list[float]] = {"null": [], "null-lean": []}
    failed: dict[str, list[str]] = {"null": [], "null-lean": []}
    for round_ in range(plan.pairs):
        # Alternated, so a drift of the machine falls on both floors alike.
        kinds = ("null", "null-lean") if round_ % 2 == 0 else ("null-lean", "null")
        for kind in kinds:
            key = _FLOORS[kind][0]
            try:
                us = await _measure(run, kind, plan.seconds, plan.warmup)
            except (LoadError, RuntimeError, OSError) as error:
                failed[kind].append(f"round {round_ + 1}: {error}")
                run.say(f"  {key} round {round_ + 1}: not measured: {error}")
                continue
            values[kind].append(us)
            run.say(f"  {key} round {round_ + 1}: {us:5.1f} us/event")
    f3 = next((f for f in run.figures if f.key == "f3" and f.measured), None)
    for kind, (key, name, ratio_key, ratio_name) in _FLOORS.items():
        if not values[kind]:
            why = "; ".join(failed[kind]) or "no round"
            run.figures.append(Figure.not_measured(key, name, why, unit="us", gated=False))
            continue
        run.figures.append(Figure(key, name, values[kind], "", unit="us", gated=False))
        if f3 is not None:
            # The floor moves with the machine (5.3-6.6 us on 30 Nov's box, 10.8 on 1 Dec's):
            # f3 over it is what compares from box to box. Rounds paired in order when both
            # measured every round; else (a round dropped, pairs unknown) the medians'.
            if len(f3.values) == len(values[kind]):
                ratios = [h / f for h, f in zip(f3.values, values[kind], strict=True)]
            else:
                ratios = [f3.median / statistics.median(values[kind])]
            run.figures.append(Figure(ratio_key, ratio_name, ratios, "", gated=False))


# Each kind of do-nothing server (`overhead.Server`): its figure, and f3 over it.
_FLOORS = {
    "null": ("f3-floor", NAME, "f3/floor", RATIO_NAME),
    "null-lean": ("f3-floor-lean", LEAN_NAME, "f3/floor-lean", LEAN_RATIO_NAME),
}


async def _measure(run: FleetBench, kind: str, seconds: int, warmup: int) -> float:
    """One arm of the `kind` of do-nothing server (`overhead.Server`): its CPU-us per event
    acknowledged in the steady window."""
    with tempfile.TemporaryDirectory() as work:
        server = await asyncio.to_thread(Server, kind, {}, Path(work) / "server.log")
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
