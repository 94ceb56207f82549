"""Index periods: one name per partition, and every name read back as its span of time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from logspace.partitions import Period, parse_period, period


def at(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026.11", Period("month", at(2026, 11), at(2026, 12))),
        ("2026.12", Period("month", at(2026, 12), at(2027, 1))),
        ("2026.q1", Period("quarter", at(2026, 1), at(2026, 4))),
        ("2026.q4", Period("quarter", at(2026, 10), at(2027, 1))),
        ("2026", Period("year", at(2026, 1), at(2027, 1))),
    ],
)
def test_each_form_is_read_as_its_span(text: str, expected: Period) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize(
    "text", ["2026.13", "2026.00", "2026.q0", "2026.q5", "2026.Q1", "26", "2026.1", "0000", "2026."]
)
def test_what_no_partition_writes_is_no_period(text: str) -> None:
    assert parse_period(text) is None


@pytest.mark.parametrize("partition", ["month", "quarter", "year"])
def test_every_period_written_is_read_back_and_holds_its_instant(partition: str) -> None:
    for month in range(1, 13):
        stamp = f"2025-{month:02}-28T23:59:59.999Z"
        instant = datetime(2025, month, 28, 23, 59, 59, 999000, tzinfo=UTC)

        parsed = parse_period(period(partition, stamp))  # type: ignore[arg-type]

        assert parsed is not None
        assert parsed.partition == partition
        assert parsed.starts <= instant < parsed.ends
