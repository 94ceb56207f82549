"""The fast path of decoding (`decode_batch`, in C) gives exactly what the thorough `decode`
gives: the same documents for Elasticsearch, the same errors, the same fields."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.events import Limits
from logspace.ingest import transcoder
from logspace.ingest.decode import decode_batch
from logspace.testing import make_event

from .differential import NOW, both, outcome
from .test_decode import ACCEPTED, REJECTED, json_values, near_events, valid_events


def test_a_common_batch_takes_the_fast_path() -> None:
    body = orjson.dumps([make_event(timestamp="2026-06-01T10:00:00.000Z") for _ in range(3)])

    assert isinstance(decode_batch(body, "space", prefix="p", now=NOW), transcoder.Transcoded)


def test_the_java_agents_arrays_take_the_fast_path_too() -> None:
    """The original agents send every property value as an array."""
    event = make_event(
        timestamp="2026-06-01T10:00:00.000Z",
        boolean_properties={"daemon": [True]},
        date_properties={"started": ["2026-06-01T06:00:00.000Z"]},
        double_properties={"load": [0.5]},
        integer_properties={"cpus": [4]},
        string_properties={"tags": ["blue", "green"], "host": ["a"]},
    )
    body = orjson.dumps([event])

    assert isinstance(decode_batch(body, "space", prefix="p", now=NOW), transcoder.Transcoded)
    fast, thorough = both(body)
    assert fast == thorough


@pytest.mark.parametrize("case", ACCEPTED + REJECTED, ids=[c["name"] for c in ACCEPTED + REJECTED])
def test_the_corpus_gets_the_same_result_either_way(case: dict[str, Any]) -> None:
    fast, thorough = both(case["body"].encode())

    assert fast == thorough


@pytest.mark.parametrize(
    "event",
    [
        {"timestamp": "2026-02-30T00:00:00.000Z"},
        {"timestamp": "2026-06-01T24:00:00.000Z"},
        {"timestamp": "1999-12-31T23:59:59.999Z"},
        {"timestamp": "2026-06-16T12:00:00.001Z"},
        {"timestamp": "2026-06-16T12:00:00.000Z"},
        {"timestamp": "2026-06-01T10:00:00Z"},
        {"timestamp": "2026-06-01T12:00:00.5+02:00"},
        {"timestamp": "\uff12026-06-01T10:00:00.000Z"},  # a full-width digit
        {"date-properties": {"d": "0000-01-01T00:00:00.000Z"}},
        {"date-properties": {"d": "2024-02-29T00:00:00.000Z"}},
        {"date-properties": {"d": "2026-06-01T10:00:00-01:00"}},
        {"string-properties": {"a..b": "x"}},
        {"string-properties": {" ": "x"}},
        {"string-properties": {"": "x"}},
        {"string-properties": {"x" * 256: "x"}},
        {"string-properties": {"tags": ["a", "b"]}},
        {"integer-properties": {"n": [5]}},
        {"integer-properties": {"n": [5, 6]}},
        {"integer-properties": {"n": []}},
        {"string-properties": {"s": []}},
        {"date-properties": {"d": ["2026-06-01T10:00:00.000Z", "2026-06-01T10:00:00.000Z"]}},
        {"string-properties": {"s": ["x" * 40_000]}},
        {"string-properties": {"s": "[not an array]"}},
        {"integer-properties": {"n": 2**31}},
        {"long-properties": {"n": 2**63}},
        {"double-properties": {"n": 2**64 - 1}},
        {"float-properties": {"n": 3.5e38}},
        {"double-properties": {"n": 5}},
        {"boolean-properties": {"b": 1}},
        {"pid": None, "marker": "m"},
        {"gid": ""},
        {"id": "é" * 200},
        {"space": "other"},
        {"colour": "red"},
        {"string-properties": None},
        {"string-properties": {"s": "x" * 40_000}},
    ],
)
def test_unusual_events_get_the_same_result_either_way(event: dict[str, Any]) -> None:
    body = orjson.dumps([make_event(timestamp="2026-06-01T10:00:00.000Z") | event])

    fast, thorough = both(body)

    assert fast == thorough


def test_limits_apply_the_same_either_way() -> None:
    many = make_event(
        timestamp="2026-06-01T10:00:00.000Z",
        string_properties={f"s{i}": "x" for i in range(6)},
        long_properties={f"l{i}": i for i in range(5)},
    )
    body = orjson.dumps([many, many])
    limits = Limits(max_events=1, max_properties=10, max_property_name_length=2)

    for changed in ({"max_events": 1}, {"max_properties": 10}, {"max_property_name_length": 2}):
        fast, thorough = both(body, Limits(**changed))
        assert fast == thorough
    assert both(body, limits)[0] == both(body, limits)[1]


def test_a_batch_over_two_months_goes_to_two_indices() -> None:
    body = orjson.dumps(
        [
            make_event(id="a", timestamp="2026-05-31T23:59:59.999Z"),
            make_event(id="b", timestamp="2026-06-01T00:00:00.000Z"),
        ]
    )

    (action_a, _, action_b, _), _, _ = outcome(decode_batch(body, "space", prefix="p", now=NOW))

    assert action_a == {"create": {"_index": "p-space-2026.05", "_id": "a"}}
    assert action_b == {"create": {"_index": "p-space-2026.06", "_id": "b"}}


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_get_the_same_result_either_way(body: bytes) -> None:
    fast, thorough = both(body)

    assert fast == thorough


@settings(max_examples=300)
@given(st.lists(valid_events | near_events | json_values, max_size=6))
def test_any_batch_gets_the_same_result_either_way(batch: list[Any]) -> None:
    body = orjson.dumps(batch)

    fast, thorough = both(body)

    assert fast == thorough


@settings(max_examples=200)
@given(st.lists(valid_events, min_size=1, max_size=6), st.sampled_from([0, 1, 2]))
def test_valid_batches_in_any_json_layout_get_the_same_result(
    batch: list[dict[str, Any]], indent: int
) -> None:
    # Now is after every generated timestamp; the window reaches back to 2001.
    body = json.dumps(batch, indent=indent or None).encode()
    limits = Limits(max_future=timedelta(days=365 * 30))

    fast, thorough = both(body, limits)

    assert fast == thorough
