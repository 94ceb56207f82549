"""The C path against the thorough decoder on generated batches (hypothesis): common and Java
agents' batches, damaged ones, big ones; `plain_each`'s verdicts, event by event."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logspace import fastpath
from logspace.elastic import bulk
from logspace.events import DEFAULT_LIMITS, Limits

from .differential import NOW, both
from .transcoding import WIDE, common_events, event, java_body, java_events, transcoded


@settings(max_examples=300)
@given(
    st.lists(common_events, min_size=1, max_size=6), st.sampled_from(["orjson", "ascii", "indent"])
)
def test_common_batches_in_any_layout_take_the_c_path_with_the_same_result(
    batch: list[dict[str, Any]], layout: str
) -> None:
    if layout == "orjson":
        body = orjson.dumps(batch)
    else:  # \u escapes everywhere outside ASCII, or whitespace everywhere
        body = json.dumps(batch, indent=2 if layout == "indent" else None).encode()
    # json.dumps writes \u escapes outside ASCII; text fields with escapes are left to msgspec.
    escaped_text = any(
        "\\" in json.dumps(event[key], ensure_ascii=layout != "orjson")
        for event in batch
        for key in ("id", "type")
    )

    fast, thorough = both(body, WIDE)

    assert fast == thorough
    if not escaped_text:
        assert transcoded(body, WIDE) is not None


@settings(max_examples=500)
@given(
    st.lists(common_events, min_size=1, max_size=3),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=4),
    st.binary(max_size=4),
)
def test_a_damaged_common_batch_gets_the_same_result_either_way(
    batch: list[dict[str, Any]], at: int, cut: int, inserted: bytes
) -> None:
    """Bytes cut out or put in anywhere: the C path must not crash, nor pass what it should
    not."""
    body = orjson.dumps(batch)
    at %= len(body)
    damaged = body[:at] + inserted + body[at + cut :]

    fast, thorough = both(damaged, WIDE)

    assert fast == thorough


def test_every_event_of_a_big_batch_is_in_its_body() -> None:
    events = [event(id=str(i), long_properties={"n": i}) for i in range(5000)]

    batch = transcoded(orjson.dumps(events))

    assert batch is not None
    assert len(batch) == 5000
    assert [orjson.loads(batch.events[i].partition(b"\n")[2])["id"] for i in (0, 4999)] == [
        "0",
        "4999",
    ]
    assert isinstance(batch.events, bulk.Bulk)


def test_a_batch_with_a_few_bad_events_is_checked_in_python_only_where_needed() -> None:
    """`decode` leaves the events the C path vouches for alone, and names the same problems."""
    events = [event(id=str(i), long_properties={"n": i}) for i in range(20)]
    events[3]["integer-properties"] = {"n": "x"}
    del events[7]["system"]
    events[9]["timestamp"] = "2026-06-01T12:00:00+02:00"  # valid, but normalised by `decode`
    body = orjson.dumps(events)

    plain = fastpath.plain_events(body, DEFAULT_LIMITS, NOW + DEFAULT_LIMITS.max_future)

    assert plain == [i not in (3, 7, 9) for i in range(20)]
    fast, thorough = both(body)
    assert fast == thorough
    assert [error["path"] for error in fast["parameters"]["errors"]] == [
        "$[3].integer-properties.n",
        "$[7].system",
    ]


@settings(max_examples=300)
@given(st.lists(java_events, min_size=1, max_size=5))
def test_java_agents_batches_take_the_c_path_with_the_same_result(
    batch: list[dict[str, Any]],
) -> None:
    body = java_body(batch)
    escaped_text = any(
        "\\" in json.dumps(event.get(key, ""), ensure_ascii=False)
        for event in batch
        for key in ("id", "type", "marker")
    )

    fast, thorough = both(body, WIDE)

    assert fast == thorough
    if not escaped_text:
        assert transcoded(body, WIDE) is not None


@settings(max_examples=500)
@given(
    st.lists(java_events, min_size=1, max_size=3),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=4),
    st.sampled_from([b"", b"[", b"]", b",", b"NaN", b'"', b"-", b"Infinity", b"{}", b" "]),
)
def test_a_damaged_java_batch_gets_the_same_result_either_way(
    batch: list[dict[str, Any]], at: int, cut: int, inserted: bytes
) -> None:
    body = java_body(batch)
    at %= len(body)
    damaged = body[:at] + inserted + body[at + cut :]

    fast, thorough = both(damaged, WIDE)

    assert fast == thorough


def alone_as_it_is(event: bytes, limits: Limits) -> bool:
    """What `plain_each` says of one event, by definition: the C path takes the batch of that
    event alone (one event, not two), and writes its document as it is."""
    result = fastpath.write(b"[" + event + b"]", b"", b"", limits, NOW + limits.max_future)
    return result is not None and result.events == 1 and result.normalised == 0


# Generating both kinds of events is slow on a busy machine; the check is not about speed.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(common_events | java_events, min_size=1, max_size=3),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=4),
    st.sampled_from([b"", b"[", b"]", b",", b"NaN", b'"', b"-", b"{}", b" ", b"\\u00e9"]),
)
def test_plain_each_judges_each_event_as_a_batch_of_it_alone(
    batch: list[dict[str, Any]], at: int, cut: int, inserted: bytes
) -> None:
    """One call for many events (the agent's), every verdict that of the event alone, also for
    events damaged anywhere, events of two values and no event at all."""
    events = [java_body([event])[1:-1] for event in batch]
    first = events[0]
    at %= len(first)
    events.append(first[:at] + inserted + first[at + cut :])
    events += [b"", b" ", first + b"," + first, b" " + first + b"\n"]
    for limits in (WIDE, replace(WIDE, max_properties=2), replace(WIDE, max_events=0)):
        expected = [alone_as_it_is(event, limits) for event in events]

        assert fastpath.plain_each(events, limits, NOW + limits.max_future) == expected
        assert fastpath.plain_events(java_body(batch), limits, NOW + limits.max_future) in (
            expected[: len(batch)],
            None,  # bare NaN: not split into events in Python
        )


def test_plain_each_takes_any_bytes_like_events_and_refuses_other_things() -> None:
    encoded = orjson.dumps(event())
    newest = NOW + DEFAULT_LIMITS.max_future

    assert (
        fastpath.plain_each(
            [encoded, memoryview(encoded), bytearray(encoded)], DEFAULT_LIMITS, newest
        )
        == [True] * 3
    )
    assert fastpath.plain_each([], DEFAULT_LIMITS, newest) == []
    with pytest.raises(TypeError):
        fastpath.plain_each([encoded.decode()], DEFAULT_LIMITS, newest)  # type: ignore[list-item]
