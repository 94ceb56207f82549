"""What the box charges a process for waking from idle: a diagnostic recorded with every run,
never a figure.

A fixed piece of Python work (building small dicts and encoding them as JSON, the kind of work
HQ and the agents do per request) is timed in CPU time (`time.thread_time`) in a tight loop, and
again right after sleeps of 1, 5 and 20 ms. On a machine whose idle cores keep their caches and
clock, the four are about equal. On a virtual machine whose idle vCPU halts at once (no halt
polling: the hypervisor runs something else on the core meanwhile), work after a sleep costs
more CPU time, up to several times as much: then every figure counted in CPU per request
depends on how often the measured process waits, not only on its own instructions. HQ under
a fleet waits between bursts of requests and for each shared bulk; the agents' threads wait
between group commits. `make bench` measures this before its first arm and after its last,
into `waking` of bench/results.jsonl and the Machine table of bench/results.md, so runs on
different machines, or on one machine in different hours, can be told apart by it.

`python -m bench.wakecost` prints it alone.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

__all__ = ["measure", "summary"]

# Sleeps before the work, in seconds: 0 is the tight loop.
SLEEPS = (0.0, 0.001, 0.005, 0.02)
# How long a measurement takes, about (the sleeps included).
_SECONDS = 3.0
# Runs of the work before a warm one is timed.
_WARMING = 5


def _work() -> int:
    items = [{"id": i, "name": str(i), "pair": [i, i + 1]} for i in range(200)]
    return len(json.dumps(items))


def _costs() -> dict[float, float]:
    """The median CPU time of the work, in µs, after each of `SLEEPS`: the sleeps taken in
    turn, round after round, so that the box's drift over the seconds falls on all alike."""
    _work()  # the code and its objects loaded once
    times: dict[float, list[float]] = {sleep: [] for sleep in SLEEPS}
    deadline = time.monotonic() + _SECONDS
    while time.monotonic() < deadline or len(times[0.0]) < 15:
        for sleep in SLEEPS:
            if sleep:
                time.sleep(sleep)
            else:  # warm: the last of several in a row
                for _ in range(_WARMING):
                    _work()
            started = time.thread_time()
            _work()
            times[sleep].append(time.thread_time() - started)
    return {sleep: statistics.median(found) * 1e6 for sleep, found in times.items()}


def measure() -> dict[str, Any]:
    """The work's CPU time warm and after each sleep (µs), and the ratio after 20 ms."""
    costs = {f"{sleep * 1000:g}ms": round(cost, 1) for sleep, cost in _costs().items()}
    warm = costs["0ms"]
    return {
        "work_us": costs,
        "after_20ms_vs_warm": round(costs["20ms"] / warm, 2) if warm > 0 else None,
    }


def summary(measured: dict[str, Any] | None) -> str:
    """One line for the results: the work's µs warm and after each sleep."""
    if not measured:
        return "not measured"
    costs = measured["work_us"]
    after = ", ".join(f"{costs[key]:.0f} after {key}" for key in list(costs)[1:])
    return (
        f"a fixed piece of Python work took {costs['0ms']:.0f} µs of CPU warm, {after} of idle "
        f"({measured['after_20ms_vs_warm']}x after 20 ms)"
    )


if __name__ == "__main__":
    print(summary(measure()))
