"""The C path (`transcoder`, `_transcode.c`): a common batch becomes its `_bulk` lines with the
very documents `decode` gives; anything else is left to the slower paths, never let through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace import bulk, transcoder
from logspace.decode import DEFAULT_LIMITS, Limits, decode_batch
from logspace.events import INT32_MAX, INT64_MIN, format_instant
from logspace.testing import make_event

from .differential import NOW, both

STAMP = "2026-06-01T10:00:00.000Z"


def transcoded(body: bytes, limits: Limits = DEFAULT_LIMITS) -> transcoder.Transcoded | None:
    return transcoder.transcode(body, "space", "p", limits, NOW + limits.max_future)


def event(**fields: Any) -> dict[str, Any]:
    return make_event(timestamp=STAMP, **fields)


def test_the_extension_is_built() -> None:
    """`make test` builds it (setup.py); without it every batch would take the msgspec path."""
    assert transcoder.AVAILABLE


def test_a_common_batch_becomes_its_bulk_lines() -> None:
    events = [
        event(id="a", string_properties={"host": "h1"}, long_properties={"bytes": 5}),
        event(id="b", boolean_properties={"ok": True}, double_properties={"load": 0.25}),
    ]

    batch = decode_batch(orjson.dumps(events), "space", prefix="p", now=NOW)

    assert isinstance(batch, transcoder.Transcoded)
    assert len(batch) == 2
    assert batch.fields == {
        "string-properties.host",
        "long-properties.bytes",
        "boolean-properties.ok",
        "double-properties.load",
    }
    lines = [orjson.loads(line) for line in batch.events.body.splitlines()]
    assert lines == [
        {"create": {"_index": "p-space-2026.06", "_id": "a"}},
        events[0] | {"space": "space"},
        {"create": {"_index": "p-space-2026.06", "_id": "b"}},
        events[1] | {"space": "space"},
    ]
    assert batch.events[1].endswith(b'"space":"space"}\n')


def test_whitespace_is_left_out_of_the_documents() -> None:
    events = [event(string_properties={"message": "two  spaces\tand a tab"})]
    pretty = json.dumps(events, indent=4).encode()

    batch = transcoded(pretty)

    assert batch is not None
    assert batch.events.body == transcoded(orjson.dumps(events)).events.body  # type: ignore[union-attr]
    assert len(batch.events.body.splitlines()) == 2


def test_the_uses_of_fields_are_read_back_in_batch_order() -> None:
    body = orjson.dumps(
        [event(id="a", long_properties={"n": 1}), event(id="b", long_properties={"n": 2, "m": 3})]
    )

    batch = transcoded(body)

    assert batch is not None
    assert batch.uses({"long-properties.n"}) == [
        (0, "a", "long-properties", "n"),
        (1, "b", "long-properties", "n"),
    ]


# Each is accepted by the C path as it is; `both` then checks `decode` agrees on the result.
ACCEPTED_AS_IS = {
    "escapes in a string value": {"string-properties": {"s": 'a "quote", a \\ and a \n'}},
    "non-ASCII text": {"string-properties": {"s": "héllo wörld ✓ 𝄞"}, "type": "tÿpe"},
    "an empty family": {"long-properties": {}},
    "extreme integers": {
        "integer-properties": {"a": INT32_MAX, "b": -(2**31)},
        "long-properties": {"c": INT64_MIN, "d": 2**63 - 1},
    },
    "integers in the floating families": {
        "double-properties": {"a": 2**62},
        "float-properties": {"b": -7},
    },
    "fractions and exponents": {
        "double-properties": {"a": 1.5e300, "b": -2.5e-300, "c": 0.0},
        "float-properties": {"d": 3.4e38, "e": 1e-40},
    },
    "a leap day": {"date-properties": {"d": "2024-02-29T23:59:59.999Z"}},
    "names with dots and spaces": {"string-properties": {"a.b c": "x", " lead": "y"}},
    "every optional field": {"pid": "1", "gid": "g", "marker": "m"},
    "a blank but non-empty text": {"marker": " "},
    "the longest text": {"type": "t" * 1024, "id": "é" * 256},
}


@pytest.mark.parametrize("fields", ACCEPTED_AS_IS.values(), ids=ACCEPTED_AS_IS.keys())
def test_these_take_the_c_path_with_the_same_result(fields: dict[str, Any]) -> None:
    body = orjson.dumps([event() | fields])

    assert transcoded(body) is not None
    fast, thorough = both(body)
    assert fast == thorough


def _with(fields: dict[str, Any]) -> bytes:
    return orjson.dumps([event() | fields])


# None of these may pass as they are: each breaks a rule, or needs normalising or explaining.
LEFT_TO_THE_SLOWER_PATHS = {
    "a repeated event field": orjson.dumps([event()])[:-2] + b',"type":"again"}]',
    "a repeated property": (
        b'[{"id":"a","type":"t","system":"s","agent-id":"g","timestamp":"' + STAMP.encode() + b'",'
        b'"long-properties":{"n":1,"n":2}}]'
    ),
    "an event's own space": _with({"space": "other"}),
    "an unknown field": _with({"colour": "red"}),
    "a missing field": orjson.dumps([{k: v for k, v in event().items() if k != "system"}]),
    "a null family": _with({"string-properties": None}),
    "a null optional field": _with({"pid": None}),
    "an array value": _with({"string-properties": {"s": ["a"]}}),
    "a timestamp with an offset": _with({"timestamp": "2026-06-01T12:00:00.000+02:00"}),
    "a timestamp without milliseconds": _with({"timestamp": "2026-06-01T10:00:00Z"}),
    "a timestamp in the future": _with({"timestamp": format_instant(NOW + timedelta(days=2))}),
    "a timestamp before the oldest": _with({"timestamp": "1999-12-31T23:59:59.999Z"}),
    "30 February": _with({"date-properties": {"d": "2026-02-30T00:00:00.000Z"}}),
    "hour 24": _with({"date-properties": {"d": "2026-02-03T24:00:00.000Z"}}),
    "year 0": _with({"date-properties": {"d": "0000-01-01T00:00:00.000Z"}}),
    "an escaped name": b"["
    + _with({"long-properties": {"n": 1}})[1:-1].replace(b'"n"', b'"\\u006e"')
    + b"]",
    "an escape in the id": _with({"id": 'a"b'}),
    "a name with a control character": _with({"long-properties": {"a\x01": 1}}),
    "a non-ASCII name": _with({"long-properties": {"é": 1}}),
    "a blank name": _with({"long-properties": {"   ": 1}}),
    "an empty name": _with({"long-properties": {"": 1}}),
    "a doubled dot": _with({"long-properties": {"a..b": 1}}),
    "a trailing dot": _with({"long-properties": {"a.": 1}}),
    "a long name": _with({"long-properties": {"n" * 256: 1}}),
    "an empty id": _with({"id": ""}),
    "an id over 512 bytes": _with({"id": "é" * 257}),
    "a text over 1024 characters": _with({"type": "t" * 1025}),
    "a string over the limit": _with({"string-properties": {"s": "x" * 32769}}),
    "int32 overflow": _with({"integer-properties": {"n": 2**31}}),
    "a fraction as an integer": _with({"integer-properties": {"n": 1.0}}),
    "a fraction as a long": _with({"long-properties": {"n": 1.5}}),
    "int64 overflow": b"["
    + _with({"long-properties": {"n": 1}})[1:-1].replace(b'"n":1', b'"n":9223372036854775808')
    + b"]",
    "float32 overflow": _with({"float-properties": {"n": 3.5e38}}),
    "double overflow": _with({"double-properties": {"n": 1}}).replace(b'"n":1', b'"n":1e400'),
    "underflow to zero": _with({"double-properties": {"n": 1}}).replace(b'"n":1', b'"n":1e-400'),
    "a leading zero": _with({"double-properties": {"n": 1}}).replace(b'"n":1', b'"n":01'),
    "a string for a number": _with({"integer-properties": {"n": "5"}}),
    "a number for a boolean": _with({"boolean-properties": {"b": 1}}),
    "a lone surrogate": _with({"string-properties": {"s": "x"}}).replace(b'"x"', b'"\\ud800"'),
    "invalid UTF-8": _with({"string-properties": {"s": "x"}}).replace(b'"x"', b'"\xc3\x28"'),
    "invalid UTF-8 in a field name": orjson.dumps([event()]).replace(b'"system"', b'"sys\xfftem"'),
    "an overlong UTF-8 form": _with({"string-properties": {"s": "x"}}).replace(
        b'"x"', b'"\xc0\xaf"'
    ),
    "a raw control character": _with({"string-properties": {"s": "x"}}).replace(b'"x"', b'"\x01"'),
    "trailing bytes": orjson.dumps([event()]) + b"x",
    "an unfinished batch": orjson.dumps([event()])[:-1],
    "an empty batch": b"[]",
    "an object for a batch": orjson.dumps(event()),
}


@pytest.mark.parametrize(
    "body", LEFT_TO_THE_SLOWER_PATHS.values(), ids=LEFT_TO_THE_SLOWER_PATHS.keys()
)
def test_these_are_left_to_the_slower_paths(body: bytes) -> None:
    assert transcoded(body) is None
    fast, thorough = both(body)
    assert fast == thorough


def test_the_limits_are_the_batchs() -> None:
    many = event(long_properties={f"l{i}": i for i in range(5)})
    body = orjson.dumps([many, many])

    assert transcoded(body) is not None
    assert transcoded(body, Limits(max_events=1)) is None
    assert transcoded(body, Limits(max_properties=4)) is None
    assert transcoded(body, Limits(max_property_name_length=1)) is None
    assert transcoded(body, Limits(max_string_length=1)) is not None  # no string properties
    old = Limits(oldest_timestamp=datetime(2026, 6, 1, 10, 0, 0, 1000, tzinfo=UTC))
    assert transcoded(body, old) is None


# Events as agents write them: canonical timestamps, every family, any text.
names = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z0-9_]{1,4}){0,2}", fullmatch=True)
stamps = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31)).map(
    lambda moment: format_instant(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
)
common_events = st.builds(
    lambda id_, stamp, b, dt, d, f, i, lg, s: make_event(
        id=id_,
        timestamp=stamp,
        boolean_properties=b,
        date_properties=dt,
        double_properties=d,
        float_properties=f,
        integer_properties=i,
        long_properties=lg,
        string_properties=s,
    ),
    st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 512),
    stamps,
    st.dictionaries(names, st.booleans(), max_size=2),
    st.dictionaries(names, stamps, max_size=2),
    st.dictionaries(names, st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    st.dictionaries(
        names, st.floats(-3.4e38, 3.4e38) | st.integers(-(2**63), 2**63 - 1), max_size=2
    ),
    st.dictionaries(names, st.integers(-(2**31), 2**31 - 1), max_size=2),
    st.dictionaries(names, st.integers(-(2**63), 2**63 - 1), max_size=2),
    st.dictionaries(names, st.text(), max_size=3),
)
WIDE = Limits(max_future=timedelta(days=365 * 30))


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

    plain = transcoder.plain_events(body, DEFAULT_LIMITS, NOW + DEFAULT_LIMITS.max_future)

    assert plain == [i not in (3, 7, 9) for i in range(20)]
    fast, thorough = both(body)
    assert fast == thorough
    assert [error["path"] for error in fast["parameters"]["errors"]] == [
        "$[3].integer-properties.n",
        "$[7].system",
    ]
