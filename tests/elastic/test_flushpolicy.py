"""When the coalescer sends a shared bulk, and what goes into it (the pure policy)."""

from __future__ import annotations

import pytest

from logspace.elastic.flushpolicy import Decision, FlushPolicy

POLICY = FlushPolicy(max_events=100, max_bytes=10_000, max_wait=0.005, concurrency=2)


def test_nothing_waiting_means_nothing_to_do() -> None:
    assert POLICY.decide(0, 0, 0.0, 0) == Decision(None)


def test_a_lone_request_on_an_idle_hq_goes_at_once() -> None:
    assert POLICY.decide(6, 1_700, 0.0, 0) == Decision("idle")


def test_while_a_bulk_is_in_flight_requests_gather_until_the_time_bound() -> None:
    decision = POLICY.decide(6, 1_700, 0.002, 1)

    assert decision.flush is None
    assert decision.after == pytest.approx(0.003)


def test_the_time_bound_sends_what_gathered() -> None:
    assert POLICY.decide(12, 3_400, 0.005, 1) == Decision("time")


@pytest.mark.parametrize(
    ("events", "size", "reason"), [(100, 5_000, "events"), (40, 10_000, "bytes")]
)
def test_a_full_bulk_goes_without_waiting_out_the_time_bound(
    events: int, size: int, reason: str
) -> None:
    assert POLICY.decide(events, size, 0.0, 1) == Decision(reason)


def test_with_every_slot_taken_requests_wait_for_a_bulk_to_be_answered() -> None:
    """Not even a full bulk or the time bound sends more than `concurrency` at once."""
    assert POLICY.decide(500, 50_000, 1.0, 2) == Decision(None)


def test_on_shutdown_everything_waiting_goes_at_once() -> None:
    assert POLICY.decide(6, 1_700, 0.0, 2, closing=True) == Decision("shutdown")


def test_zero_wait_sends_whenever_a_slot_is_free() -> None:
    eager = FlushPolicy(max_events=100, max_bytes=10_000, max_wait=0.0, concurrency=2)

    assert eager.decide(6, 1_700, 0.0, 1) == Decision("time")


def test_a_bulk_takes_whole_requests_in_order_within_both_bounds() -> None:
    assert POLICY.take([(40, 1_000), (40, 1_000), (40, 1_000)]) == 2
    assert POLICY.take([(10, 4_000), (10, 4_000), (10, 4_000)]) == 2
    assert POLICY.take([(10, 100)] * 5) == 5


def test_a_request_larger_than_a_bulk_goes_alone() -> None:
    assert POLICY.take([(500, 90_000), (1, 100)]) == 1
    assert POLICY.take([(1, 100), (500, 90_000)]) == 1


@pytest.mark.parametrize(
    ("events", "size", "large"),
    [(49, 4_000, False), (50, 100, True), (1, 5_000, True), (6, 1_700, False)],
)
def test_half_a_bulk_of_events_or_bytes_is_a_large_request(
    events: int, size: int, large: bool
) -> None:
    assert POLICY.large(events, size) is large
