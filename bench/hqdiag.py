"""A diagnostic HQ for experiments, never for figures: `python -m bench.hqdiag serve ...` is
`python -m logspace serve ...` with two things added from outside, without changing HQ's code:

- BENCH_HQ_CONNECTIONS_PER_NODE: the Elasticsearch client's connections per node (the
  library's default is 10), to see what a larger pool would change;
- BENCH_HQ_DIAG=<path>: at exit, a JSON file with HQ's garbage-collection pauses per
  generation (wall time, and the CPU time of the thread that collected) and its event-loop
  stalls: a thread asks the loop every 5 ms to run a callback (`call_soon_threadsafe`) and
  records how long that took;
- BENCH_HQ_DIAG_OBJECTS=1: also count the objects the collector tracks every 3 s (a stall
  of its own, so not with the loop-lag figures);
- BENCH_HQ_GC: `freeze` (gc.freeze() once HQ has started: what was allocated until then is
  never scanned again) and/or `threshold=A,B,C` (gc.set_threshold), comma-free parts joined
  by `+`, e.g. `freeze+threshold=50000,20,100`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from typing import Any

import orjson
import uvicorn
from elasticsearch import AsyncElasticsearch

from logspace.cli import main

_gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
_gc_cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}
_gc_started = [0.0, 0.0]
_lags: list[float] = []
_objects: dict[str, int] = {}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter(), time.thread_time()]
    else:
        generation = int(info["generation"])
        _gc[generation].append(time.perf_counter() - _gc_started[0])
        _gc_cpu[generation].append(time.thread_time() - _gc_started[1])


def _probe(loop: asyncio.AbstractEventLoop) -> None:
    def ran(asked: float) -> None:
        _lags.append(time.perf_counter() - asked)

    count_objects = bool(os.environ.get("BENCH_HQ_DIAG_OBJECTS"))
    last_count = time.monotonic()
    while not loop.is_closed():
        try:
            loop.call_soon_threadsafe(ran, time.perf_counter())
        except RuntimeError:  # the loop closed meanwhile
            return
        time.sleep(0.005)
        if count_objects and time.monotonic() - last_count > 3.0:
            # Holds the GIL for a while: a stall of its own, so only when asked.
            last_count = time.monotonic()
            count = len(gc.get_objects())
            _objects["most while serving"] = max(_objects.get("most while serving", 0), count)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(values),
        "total_ms": round(1000 * sum(values), 1),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": round(1000 * ordered[-1], 3),
        "over_10ms": sum(v > 0.010 for v in values),
        "over_50ms": sum(v > 0.050 for v in values),
        "over_100ms": sum(v > 0.100 for v in values),
    }


def _write(path: str) -> None:
    _objects["at exit"] = len(gc.get_objects())
    report = {
        "gc": {f"gen{g}": _summary(p) for g, p in _gc.items()},
        "gc_cpu": {f"gen{g}": _summary(p) for g, p in _gc_cpu.items()},
        "loop_lag": _summary(_lags),
        "objects": _objects,
        "gc_settings": os.environ.get("BENCH_HQ_GC", ""),
    }
    with open(path, "wb") as out:
        out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _install() -> None:
    pool = os.environ.get("BENCH_HQ_CONNECTIONS_PER_NODE")
    if pool:
        original_init = AsyncElasticsearch.__init__

        def init(self: AsyncElasticsearch, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("connections_per_node", int(pool))
            original_init(self, *args, **kwargs)

        AsyncElasticsearch.__init__ = init  # type: ignore[method-assign]  # the experiment
    tuning = os.environ.get("BENCH_HQ_GC", "")
    for part in filter(None, tuning.split("+")):
        if part.startswith("threshold="):
            gc.set_threshold(*(int(x) for x in part.removeprefix("threshold=").split(",")))
    path = os.environ.get("BENCH_HQ_DIAG", "")
    if path or "freeze" in tuning:
        original_startup = uvicorn.Server.startup

        async def startup(self: uvicorn.Server, sockets: Any = None) -> None:
            await original_startup(self, sockets)
            _objects["after startup"] = len(gc.get_objects())
            if "freeze" in tuning:
                gc.freeze()

        uvicorn.Server.startup = startup  # type: ignore[method-assign]  # the experiment
    if path:
        gc.callbacks.append(_on_gc)
        original_serve = uvicorn.Server._serve

        async def serve(self: uvicorn.Server, sockets: Any = None) -> None:
            loop = asyncio.get_running_loop()
            threading.Thread(target=_probe, args=(loop,), daemon=True).start()
            try:
                await original_serve(self, sockets)
            finally:
                # Here, not atexit: uvicorn raises SIGTERM again once it has shut down.
                _write(path)

        uvicorn.Server._serve = serve  # type: ignore[method-assign]  # the experiment


if __name__ == "__main__":
    _install()
    sys.exit(main(sys.argv[1:]))
