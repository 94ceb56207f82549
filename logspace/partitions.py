"""The time partition of event indices: a month (the default), a quarter or a year. Pure.

An event goes to `<prefix>-<space>-<period>`, the period of its own timestamp (UTC):
`2026.11` by month, `2026.q4` by quarter, `2026` by year. The three forms never look alike, so
retention reads every index name whatever the partition is now: a deployment may change it,
and the indices of the old partition then age out as they would have.

Longer periods make fewer, larger indices: each index is at least one shard (and its
replicas), and a cluster holds a bounded number of shards per node (see
docs/operations.md#shards). The C fast path writes the same names (`_transcode.c`, by the
partition's `code`); tests/ingest/test_transcoder.py holds the two to one result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

__all__ = ["CODES", "PARTITIONS", "Partition", "Period", "parse_period", "period"]

Partition = Literal["month", "quarter", "year"]
PARTITIONS: Final[tuple[Partition, ...]] = ("month", "quarter", "year")
# How `_transcode.transcode` is told the partition.
CODES: Final[dict[Partition, int]] = {"month": 0, "quarter": 1, "year": 2}

_PERIOD = re.compile(r"([0-9]{4})(?:\.([0-9]{2})|\.q([1-4]))?")


def period(partition: Partition, timestamp: str) -> str:
    """The period of a normalised timestamp (`YYYY-MM-DDT...Z`: year and month at fixed
    positions) in an index name."""
    if partition == "month":
        return f"{timestamp[:4]}.{timestamp[5:7]}"
    if partition == "quarter":
        return f"{timestamp[:4]}.q{(int(timestamp[5:7]) + 2) // 3}"
    return timestamp[:4]


@dataclass(frozen=True)
class Period:
    """The span of time one index holds: from `starts` (inclusive) to `ends` (exclusive)."""

    partition: Partition
    starts: datetime
    ends: datetime


def parse_period(text: str) -> Period | None:
    """The period an index name ends with (`2026.11`, `2026.q4`, `2026`), or None."""
    match = _PERIOD.fullmatch(text)
    if match is None:
        return None
    year = int(match[1])
    if not 1 <= year < 9999:
        return None  # no datetime for its end
    if match[2] is not None:
        month = int(match[2])
        if not 1 <= month <= 12:
            return None
        return Period("month", _month_start(year, month), _month_start(year, month + 1))
    if match[3] is not None:
        first = 3 * int(match[3]) - 2
        return Period("quarter", _month_start(year, first), _month_start(year, first + 3))
    return Period("year", _month_start(year, 1), _month_start(year + 1, 1))


def _month_start(year: int, month: int) -> datetime:
    """The first instant of `month` (13 is January of the next year)."""
    if month > 12:
        year, month = year + 1, month - 12
    return datetime(year, month, 1, tzinfo=UTC)
