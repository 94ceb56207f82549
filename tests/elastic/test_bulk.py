"""Bulk bodies and the classification of bulk responses, against recorded responses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from logspace.elastic.bulk import Rejection, chunks, classify, encode, index_name
from logspace.testing import make_event

RESPONSES = Path(__file__).parent.parent / "data" / "bulk"


def recorded(name: str) -> dict[str, Any]:
    response: dict[str, Any] = orjson.loads((RESPONSES / name).read_bytes())
    return response


def test_each_event_becomes_a_create_with_its_id_in_the_index_of_its_month() -> None:
    event = make_event(id='quote"d', timestamp="2015-05-18T14:07:00.000Z")

    (lines,) = encode([event], "development", "logspace-events")

    action, document, end = lines.split(b"\n")
    assert orjson.loads(action) == {
        "create": {"_index": "logspace-events-development-2015.05", "_id": 'quote"d'}
    }
    assert orjson.loads(document) == event | {"space": "development"}
    assert end == b""


def test_index_names_use_the_utc_month() -> None:
    assert index_name("p", "s", "1999-12-31T23:59:59.999Z") == "p-s-1999.12"


@pytest.mark.parametrize(
    ("partition", "names"),
    [
        ("month", ["p-s-2026.01", "p-s-2026.03", "p-s-2026.04", "p-s-2026.12"]),
        ("quarter", ["p-s-2026.q1", "p-s-2026.q1", "p-s-2026.q2", "p-s-2026.q4"]),
        ("year", ["p-s-2026", "p-s-2026", "p-s-2026", "p-s-2026"]),
    ],
)
def test_index_names_follow_the_partition(partition: Any, names: list[str]) -> None:
    stamps = ["2026-01-01T00:00:00Z", "2026-03-31T23:59:59Z", "2026-04-01T00:00:00Z"]
    stamps.append("2026-12-31T23:59:59.999Z")

    assert [index_name("p", "s", stamp, partition) for stamp in stamps] == names


def test_a_batch_across_two_periods_writes_each_event_to_its_own() -> None:
    events = [
        make_event(timestamp="2026-03-31T23:59:59.000Z"),
        make_event(timestamp="2026-04-01T00:00:00.000Z"),
    ]

    by_month = encode([dict(e) for e in events], "s", "p", "month").indices([0, 1])
    by_quarter = encode([dict(e) for e in events], "s", "p", "quarter").indices([0, 1])
    by_year = encode([dict(e) for e in events], "s", "p", "year").indices([0, 1])

    assert by_month == ["p-s-2026.03", "p-s-2026.04"]
    assert by_quarter == ["p-s-2026.q1", "p-s-2026.q2"]
    assert by_year == ["p-s-2026"]


def test_a_response_without_errors_means_everything_is_stored() -> None:
    result = classify(recorded("created.json"), [0, 1])

    assert result.retry == []
    assert result.rejected == []
    assert result.duplicates == []


def test_duplicates_are_stored_and_mapping_errors_are_final() -> None:
    result = classify(recorded("duplicate-rejected-created.json"), [5, 6, 7])

    assert result.retry == []
    assert result.duplicates == [5]
    assert result.rejected == [
        Rejection(
            6,
            400,
            "strict_dynamic_mapping_exception",
            "[1:110] mapping set to strict, dynamic introduction of [colour] within [_doc] "
            "is not allowed",
        )
    ]


def test_429_and_5xx_items_are_retried_and_only_those() -> None:
    result = classify(recorded("crafted-429-503.json"), [10, 11, 12, 13])

    assert result.retry == [11, 12]
    assert result.rejected == []
    assert result.duplicates == [13]


def test_elasticsearchs_own_reason_for_a_retry_is_kept_without_the_events_content() -> None:
    result = classify(recorded("flood-stage.json"), [0, 1])

    assert result.retry == [0, 1]
    assert result.retry_reason == (
        "429 cluster_block_exception: index [existing-2026.01] blocked by: [TOO_MANY_REQUESTS/12/"
        "disk usage exceeded flood-stage watermark, index has read-only-allow-delete block; for "
        "more information, see https://www.elastic.co/docs/troubleshoot/elasticsearch/"
        "fix-watermark-errors?version=9.5];"
    )
    assert result.blocked
    items = recorded("flood-stage.json")["items"]
    unallocated = classify({"errors": True, "items": items[1:]}, [1])
    assert unallocated.retry_reason == (
        "503 unavailable_shards_exception: [fresh-2026.03][0] primary shard is not active "
        "Timeout: [5s]"
    )
    assert not unallocated.blocked


def test_a_new_index_past_the_shard_limit_is_retried_later_not_refused_for_good() -> None:
    """Elasticsearch answers 400, but the event is fine: an operator must raise the limit (or
    free shards), and the agent must keep the event meanwhile."""
    result = classify(recorded("shard-limit.json"), [0, 1])

    assert (result.retry, result.rejected) == ([1], [])
    assert result.blocked
    assert result.retry_reason.startswith(
        "400 illegal_argument_exception: Validation Failed: 1: this action would add [2] "
        "shards, but this cluster currently has [2]/[3] maximum normal shards open"
    )


def test_a_response_that_does_not_match_the_request_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 items for 2 actions"):
        classify(recorded("duplicate-rejected-created.json"), [0, 1])


def test_chunks_keep_requests_under_the_byte_limit_and_never_split_an_event() -> None:
    lines = [b"x" * 40, b"x" * 40, b"x" * 100, b"x" * 10]

    assert list(chunks(lines, [0, 1, 2, 3], max_bytes=90)) == [[0, 1], [2], [3]]
    assert list(chunks(lines, [1, 3], max_bytes=50)) == [[1, 3]]


def test_lines_kept_as_a_region_of_a_shared_body_are_the_same_lines() -> None:
    lines = encode([make_event(timestamp="2021-01-01T00:00:00Z") for _ in range(3)], "s", "p")
    before = (lines.body, list(lines), lines.indices([0, 2]))
    shared = b"other request's lines\n" + lines.body + b"yet another's\n"

    lines.share(shared, len(b"other request's lines\n"))
    assert (lines.body, list(lines), lines.indices([0, 2])) == before
    assert lines.join([2, 0]) == before[1][2] + before[1][0]

    lines.unshare()
    assert (lines.body, list(lines), lines.size) == (before[0], before[1], len(before[0]))
