"""A diagnostic HQ for experiments, never for figures: `python -m bench.hqdiag serve ...` is
`python -m logspace serve ...` with two things added from outside, without changing HQ's code:

- BENCH_HQ_CONNECTIONS_PER_NODE: the Elasticsearch client's connections per node (the
  library's default is 10), to see what a larger pool would change;
- BENCH_HQ_DIAG=<path>: at exit, a JSON file with HQ's garbage-collection pauses per
  generation and its event-loop stalls: a thread asks the loop every 5 ms to run a callback
  (`call_soon_threadsafe`) and records how long that took.
"""

from __future__ import annotations

import asyncio
import atexit
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
_gc_started = [0.0]
_lags: list[float] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc[int(info["generation"])].append(time.perf_counter() - _gc_started[0])


def _probe(loop: asyncio.AbstractEventLoop) -> None:
    def ran(asked: float) -> None:
        _lags.append(time.perf_counter() - asked)

    while not loop.is_closed():
        try:
            loop.call_soon_threadsafe(ran, time.perf_counter())
        except RuntimeError:  # the loop closed meanwhile
            return
        time.sleep(0.005)


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
    report = {
        "gc": {f"gen{g}": _summary(p) for g, p in _gc.items()},
        "loop_lag": _summary(_lags),
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
    path = os.environ.get("BENCH_HQ_DIAG")
    if path:
        gc.callbacks.append(_on_gc)
        original_serve = uvicorn.Server.serve

        async def serve(self: uvicorn.Server, sockets: Any = None) -> None:
            loop = asyncio.get_running_loop()
            threading.Thread(target=_probe, args=(loop,), daemon=True).start()
            await original_serve(self, sockets)

        uvicorn.Server.serve = serve  # type: ignore[method-assign]  # the experiment
        atexit.register(_write, path)


if __name__ == "__main__":
    _install()
    sys.exit(main(sys.argv[1:]))
