"""The garbage collector of a serving HQ process.

CPython's defaults collect the youngest generation every 700 net allocations and, every so
often, walk every object the process holds. HQ's long-lived objects (modules, settings, the
store's clients) are made at start, and what a request allocates dies with it, so under a
fleet of small requests the defaults cost a fifth to a quarter of HQ's CPU and stall the
event loop for up to hundreds of milliseconds (bench/fleet.md, (ii) and (iii)). Once started,
HQ moves what exists out of the collector's sight (`gc.freeze`) and collects less often.
Reference cycles are still collected: only the pace changes.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune"]

# Young collections every 50,000 net allocations, the oldest generation rarely.
THRESHOLDS = (50_000, 50, 1000)


def tune() -> None:
    """Freeze what exists now and set `THRESHOLDS`; for a serving process, after start-up."""
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
