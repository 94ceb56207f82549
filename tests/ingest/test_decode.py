"""The decoder: a corpus of accepted and rejected bodies with their exact results, and
property-based checks that no body, however malformed, escapes as anything but a 400."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.decoder import decode
from logspace.errors import InvalidBatch, InvalidEvents, InvalidJson, LogspaceError
from logspace.events import FAMILIES
from logspace.testing import make_event

CORPUS = json.loads((Path(__file__).parent.parent / "data" / "decode-corpus.json").read_text())
ACCEPTED = [case for case in CORPUS if "accepted" in case]
REJECTED = [case for case in CORPUS if "accepted" not in case]


@pytest.mark.parametrize("case", ACCEPTED, ids=[case["name"] for case in ACCEPTED])
def test_accepted_bodies_decode_to_their_normalised_events(case: dict[str, Any]) -> None:
    assert decode(case["body"].encode()) == case["accepted"]


@pytest.mark.parametrize("case", REJECTED, ids=[case["name"] for case in REJECTED])
def test_rejected_bodies_get_their_exact_errors(case: dict[str, Any]) -> None:
    with pytest.raises(LogspaceError) as raised:
        decode(case["body"].encode())

    error = raised.value
    assert error.type == case["type"]
    assert error.status == 400
    if "message" in case:
        assert error.message == case["message"]
    if "errors" in case:
        assert isinstance(error, InvalidEvents)
        assert [[e.path, e.message] for e in error.errors] == case["errors"]
        expected_ids = case.get("ids", ["e1"] * len(case["errors"]))
        if case["body"].startswith('[{"id":"e'):
            assert [e.id for e in error.errors] == expected_ids


def test_invalid_events_report_counts_and_a_readable_message() -> None:
    body = orjson.dumps([make_event(), make_event(id="x", timestamp="soon"), {"id": "y"}])

    with pytest.raises(InvalidEvents) as raised:
        decode(body)

    parameters = raised.value.parameters
    assert parameters is not None
    assert parameters["event-count"] == 3
    assert parameters["invalid-event-count"] == 2
    assert parameters["error-count"] == 4
    assert raised.value.message.startswith("2 of 3 events are invalid, nothing was stored.")


def test_many_errors_are_counted_but_only_the_first_hundred_listed() -> None:
    body = orjson.dumps([{"id": str(i)} for i in range(50)])

    with pytest.raises(InvalidEvents) as raised:
        decode(body)

    parameters = raised.value.parameters
    assert parameters is not None
    assert parameters["error-count"] == 150  # system, agent-id and timestamp of each
    assert len(parameters["errors"]) == 100


# -- properties -------------------------------------------------------------------------

# Integers within 64 bits: the JSON encoder of the test itself cannot write larger ones.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["id", "type", "system", "agent-id", "timestamp", "pid", "gid", "marker", *FAMILIES]
) | st.text(max_size=10)
near_events = st.dictionaries(field_names, json_values, max_size=12)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_decoded_or_refused_with_a_400(body: bytes) -> None:
    try:
        decode(body)
    except (InvalidJson, InvalidBatch, InvalidEvents) as error:
        assert error.status == 400
        assert set(error.body()) == {"type", "message", "parameters"}


@given(st.lists(near_events | json_values, max_size=5))
def test_arbitrary_json_is_decoded_or_refused_with_a_400(batch: list[Any]) -> None:
    try:
        events = decode(orjson.dumps(batch))
    except (InvalidBatch, InvalidEvents) as error:
        assert error.status == 400
        orjson.dumps(error.body())  # always serialisable
    else:
        assert all(isinstance(event, dict) for event in events)


instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.timezones()
)
valid_events = st.builds(
    lambda id_, ts, d, s: make_event(
        id=id_,
        timestamp=ts.isoformat(),
        double_properties=d,
        string_properties=s,
    ),
    st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 512),
    instants,
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,4}(\.[a-z0-9_]{1,4}){0,2}", fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False),
        max_size=3,
    ),
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
        st.text() | st.lists(st.text(), min_size=2, max_size=3),
        max_size=3,
    ),
)


@settings(max_examples=200)
@given(st.lists(valid_events, max_size=5))
def test_valid_events_are_accepted_and_normalising_twice_changes_nothing(
    batch: list[dict[str, Any]],
) -> None:
    once = decode(orjson.dumps(batch))
    twice = decode(orjson.dumps(once))

    assert twice == once
    assert all(event["timestamp"].endswith("Z") for event in once)
