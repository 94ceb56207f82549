"""The ingest path's counts in plain numbers, handed to the Prometheus metrics in one go
(`Metrics.flush`, once per event-loop turn and before each scrape): every `inc` and `observe`
of prometheus_client takes a lock, and a fleet's request of a few events made a dozen."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Histogram

__all__ = ["Observations", "Tally"]


class Tally:
    """The counts a stored batch moves, in plain numbers: `Metrics.flush` hands them to the
    Prometheus metrics once per event-loop iteration and before each scrape. Each `inc` of
    prometheus_client takes a lock, and a fleet's request of a few events made ten of them."""

    __slots__ = (
        "bulk_wait_seconds",
        "events_in_flight",
        "events_in_flight_shown",
        "requests_in_flight",
        "requests_in_flight_shown",
        "stored",
        "write_seconds",
    )

    def __init__(
        self, *, write_buckets: tuple[float, ...], wait_buckets: tuple[float, ...]
    ) -> None:
        self.requests_in_flight = self.requests_in_flight_shown = 0
        self.events_in_flight = self.events_in_flight_shown = 0
        self.stored: dict[str, list[int]] = {}  # space -> [requests, events] accepted
        self.write_seconds = Observations(write_buckets)
        self.bulk_wait_seconds = Observations(wait_buckets)

    def stored_in(self, space: str, requests: int, events: int) -> None:
        counts = self.stored.get(space)
        if counts is None:
            self.stored[space] = [requests, events]
        else:
            counts[0] += requests
            counts[1] += events


class Observations:
    """Observations for a histogram without labels, counted by bucket in plain numbers and
    handed over in one go: `Histogram.observe` takes two locks and walks the buckets in
    Python, and a fleet's small request made two observations (tests/ops/test_metrics.py
    holds the two ways to the same exposition)."""

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0

    def add(self, amount: float) -> None:
        # The first bucket whose bound is at least the amount, as `Histogram.observe` picks.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def fold_into(self, histogram: Histogram) -> None:
        """Add what was observed since the last fold to `histogram` (made with the same
        bounds), as `observe` would have."""
        counts = self._counts
        if not any(counts):
            return
        # prometheus_client keeps a histogram as a value per bucket (the last +Inf) and one for
        # the sum; `observe` increments them, as this does by more than one at a time.
        buckets = histogram._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        histogram._sum.inc(self._sum)
        self._sum = 0.0
