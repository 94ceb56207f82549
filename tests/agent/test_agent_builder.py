"""Building events: typed properties, generated fields, and HQ's own validation rules."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.agent import EventBuilder, InvalidEvent, encode_event
from logspace.agent.builder import format_instant, instant_from_timestamp, random_id
from logspace.decoder import decode
from logspace.errors import LogspaceError
from logspace.testing import make_event


def test_a_built_event_has_an_id_a_utc_timestamp_and_the_host_as_system() -> None:
    event = EventBuilder("os/cpu").build()

    uuid.UUID(event["id"])
    assert event["type"] == event["agent-id"] == "os/cpu"
    assert event["system"]
    stamp = datetime.fromisoformat(event["timestamp"])
    assert event["timestamp"].endswith("Z")
    assert len(event["timestamp"]) == 24
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


def test_each_family_is_explicit_and_values_are_checked_on_the_spot() -> None:
    event = (
        EventBuilder("demo", "demo/agent", pid="p", gid="g", marker="m")
        .boolean("ok", True)
        .date("when", datetime(2015, 5, 18, 16, 7, tzinfo=timezone(timedelta(hours=2))))
        .double("load", 0.5)
        .float32("ratio", 0.25)
        .integer("count", 4)
        .long("bytes", 2**40)
        .string("tags", ["a", "b"])
        .build()
    )

    assert event["pid"] == "p"
    assert event["gid"] == "g"
    assert event["marker"] == "m"
    assert event["date-properties"] == {"when": "2015-05-18T14:07:00.000Z"}
    assert event["integer-properties"] == {"count": 4}
    assert event["long-properties"] == {"bytes": 2**40}
    assert event["string-properties"] == {"tags": ["a", "b"]}
    assert event["float-properties"] == {"ratio": 0.25}


def test_the_family_is_inferred_from_unambiguous_python_types() -> None:
    when = datetime(2020, 1, 1, tzinfo=UTC)
    event = (
        EventBuilder("demo")
        .properties({"flag": False, "n": 3, "x": 1.5, "s": "t", "many": ["a", "b"], "at": when})
        .build()
    )

    assert event["boolean-properties"] == {"flag": False}
    assert event["long-properties"] == {"n": 3}
    assert event["double-properties"] == {"x": 1.5}
    assert event["string-properties"] == {"s": "t", "many": ["a", "b"]}
    assert event["date-properties"] == {"at": "2020-01-01T00:00:00.000Z"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.integer("count", 2**31), "expected an integer within int32"),
        (lambda b: b.integer("count", 4.0), "expected an integer within int32"),
        (lambda b: b.double("load", float("nan")), "expected a finite number"),
        (lambda b: b.boolean("ok", "true"), "expected true or false"),
        (lambda b: b.long("a..b", 1), "empty part between dots"),
        (lambda b: b.property("x", None), "cannot infer the property type"),
        (lambda b: b.property("x", {"a": 1}), "cannot infer the property type"),
        (lambda b: b.date("when", datetime(2020, 1, 1)), "has no time zone"),
        (lambda b: b.date("when", "2020-01-01"), "without one"),
        (lambda b: b.string("tags", []), "expected at least one value"),
    ],
)
def test_a_value_hq_would_refuse_raises_with_its_path(
    call: Callable[[EventBuilder], object], message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message) as raised:
        call(EventBuilder("demo"))
    assert raised.value.errors[0].path.startswith("$.")


def test_build_refuses_fields_hq_would_refuse() -> None:
    with pytest.raises(InvalidEvent, match="expected a non-empty string") as raised:
        EventBuilder("", system="host").build()
    # An empty type is no type, which HQ takes; the agent id (the type by default) it does not.
    assert [error.path for error in raised.value.errors] == ["$.agent-id"]


def test_encode_event_uses_the_same_rules_as_hq() -> None:
    """Whatever encode_event accepts, HQ's decoder accepts; whatever it refuses, HQ refuses."""
    good = make_event(integer_properties={"n": 1})
    bad = make_event(integer_properties={"n": 1.5}, colour="red")

    assert decode(b"[" + encode_event(good) + b"]")[0]["id"] == good["id"]
    with pytest.raises(InvalidEvent) as raised:
        encode_event(bad)
    assert [(e.path, e.message) for e in raised.value.errors] == [
        ("$.integer-properties.n", "expected an integer within int32, found number 1.5"),
        ("$.colour", "unknown field 'colour'"),
    ]


def test_encode_event_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(InvalidEvent, match="cannot be encoded as JSON"):
        encode_event(make_event(long_properties={"n": 2**70}))
    with pytest.raises(InvalidEvent, match="cannot be encoded as JSON"):
        encode_event(make_event(string_properties={"s": object()}))


def test_encoded_events_are_the_compact_json_of_the_event() -> None:
    event = make_event()
    assert orjson.loads(encode_event(event)) == event


def test_build_returns_independent_copies() -> None:
    builder = EventBuilder("demo").long("n", 1)
    first = builder.build()
    first["long-properties"]["n"] = 2
    assert builder.build()["long-properties"] == {"n": 1}


def test_random_ids_are_version_4_uuids() -> None:
    ids = [random_id() for _ in range(2000)]

    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


@pytest.mark.parametrize(
    "seconds",
    [0.0, 1.001, 1.0009995, 1.9995, 1689028554.8229995, 1772481507.1199994, 1e9 + 0.0005],
)
def test_a_posix_timestamp_is_written_as_format_instant_writes_its_datetime(
    seconds: float,
) -> None:
    expected = format_instant(datetime.fromtimestamp(seconds, UTC))
    assert instant_from_timestamp(seconds) == expected


@given(st.floats(min_value=946684800, max_value=4102444800))
def test_any_log_record_time_is_written_as_format_instant_writes_it(seconds: float) -> None:
    assert instant_from_timestamp(seconds) == format_instant(datetime.fromtimestamp(seconds, UTC))


# Events with values at and beyond HQ's limits, and names HQ refuses.
edge_names = st.sampled_from(["n", "a.b", "a..b", ".a", " ", "x" * 200, "ctl\x01"])
edge_values = st.one_of(
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["x" * 32_768, "x" * 32_769, "2026-01-01T00:00:00Z", "yesterday"]),
    st.booleans(),
)
edge_events = st.builds(
    lambda family, properties, stamp: make_event(timestamp=stamp, **{family: properties}),
    st.sampled_from(
        [
            "boolean_properties",
            "date_properties",
            "double_properties",
            "float_properties",
            "integer_properties",
            "long_properties",
            "string_properties",
        ]
    ),
    st.dictionaries(edge_names, edge_values, max_size=3),
    st.sampled_from(
        [
            "2026-01-01T00:00:00.000Z",
            "1999-12-31T23:59:59.999Z",
            "2026-01-01T00:00:00Z",
            "2999-01-01T00:00:00.000Z",
        ]
    ),
)


@settings(max_examples=300)
@given(edge_events)
def test_encode_event_takes_exactly_what_hqs_decoder_takes(event: dict[str, Any]) -> None:
    """The C path answers first; it may only ever vouch for what the decoder accepts."""
    try:
        body = orjson.dumps(event)
    except TypeError:
        return
    try:
        decode(b"[" + body + b"]")
        accepted = True
    except LogspaceError:
        accepted = False

    try:
        assert encode_event(event) == body
        assert accepted
    except InvalidEvent:
        assert not accepted
