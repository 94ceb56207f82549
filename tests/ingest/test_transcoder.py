"""The C path (`transcoder`, `_transcode.c`): a common batch becomes its `_bulk` lines with the
very documents `decode` gives; anything else is left to the slower paths, never let through."""

from __future__ import annotations

import itertools
import json
import string
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from logspace import fastpath
from logspace.elastic import bulk
from logspace.events import DEFAULT_LIMITS, INT32_MAX, INT64_MIN, Limits, format_instant
from logspace.ingest import transcoder
from logspace.ingest.decode import decode_batch
from logspace.testing import make_event

from .differential import NOW, both
from .transcoding import STAMP, event, transcoded


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


def test_the_fields_are_right_however_often_names_recur_or_crowd_each_other_out() -> None:
    """The C path keeps the names it made (a small cache, one entry per slot): the same names
    again, names of the same length in other families, and thousands of names that take each
    other's slots all come back as exactly the batch's own."""
    families = ("double_properties", "long_properties", "string_properties")
    values = {"double_properties": 0.5, "long_properties": 7, "string_properties": "v"}
    for round_ in range(3):
        for first in range(0, 3000, 20):
            names = [f"n{n:04d}" for n in range(first, first + 20)]
            family = families[(first // 20 + round_) % 3]
            events = [event(**{family: dict.fromkeys(names, values[family])})]
            batch = transcoded(orjson.dumps(events))
            assert batch is not None
            assert batch.fields == {f"{family.replace('_', '-')}.{name}" for name in names}


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
    "the longest id": {"id": "é" * 256},
    "the longest text": {"type": "t" * 32766, "marker": "é" * 16383},
    "a long string, stored but not indexed": {"string-properties": {"s": "x" * 40_000}},
    "a number beyond float32": {"float-properties": {"n": 3.5e38, "m": -1e300}},
    "quoted non-finite numbers": {
        "double-properties": {"a": "NaN", "b": "Infinity"},
        "float-properties": {"c": "-Infinity"},
    },
}


@pytest.mark.parametrize("fields", ACCEPTED_AS_IS.values(), ids=ACCEPTED_AS_IS.keys())
def test_these_take_the_c_path_with_the_same_result(fields: dict[str, Any]) -> None:
    body = orjson.dumps([event() | fields])

    assert transcoded(body) is not None
    assert fastpath.plain_events(body, DEFAULT_LIMITS, NOW + DEFAULT_LIMITS.max_future) == [True]
    fast, thorough = both(body)
    assert fast == thorough


def _java(fields: str) -> bytes:
    """An event as the original Java agents' serializer writes one, with `fields` after its
    timestamp."""
    return (
        b'[{"id":"j1","system":"host","agent-id":"jvm/app","timestamp":"2026-06-01T10:00:00.000Z"'
        + fields.encode()
        + b"}]"
    )


# Accepted by the C path, which writes each document anew: the slower paths normalise them.
NORMALISED = {
    "arrays of one value": _java(',"long-properties":{"a":[1]},"boolean-properties":{"b":[true]}'),
    "several strings": _java(',"string-properties":{"tags":["a","b","c"],"one":["x"]}'),
    "bare NaN and Infinity": _java(
        ',"double-properties":{"a":[NaN],"b":Infinity,"c":[-Infinity]},'
        '"float-properties":{"d":[NaN]}'
    ),
    "an empty marker": _java(',"marker":""'),
    "every optional text empty": _java(',"type":"","pid":"","gid":"","marker":""'),
    "a type and an empty marker in the middle": b'[{"id":"j1","type":"t","marker":"",'
    b'"system":"h","agent-id":"a","timestamp":"2026-06-01T10:00:00.000Z"}]',
    "arrays with whitespace": _java(',"string-properties":{ "s" : [ "a" , "b" ] }'),
    "a long string in an array": _java(',"string-properties":{"s":["' + "x" * 9000 + '"]}'),
}


@pytest.mark.parametrize("body", NORMALISED.values(), ids=NORMALISED.keys())
def test_these_take_the_c_path_normalised_with_the_same_result(body: bytes) -> None:
    assert transcoded(body) is not None
    # Taken, but not as it is: `decode` must normalise such an event itself (None: a body
    # with bare NaN is not split into events at all, so every event is checked in Python).
    plain = fastpath.plain_events(body, DEFAULT_LIMITS, NOW + DEFAULT_LIMITS.max_future)
    assert plain in ([False], None)
    fast, thorough = both(body)
    assert fast == thorough


def test_values_elasticsearch_does_not_index_are_counted() -> None:
    body = _java(
        ',"double-properties":{"a":[NaN],"b":"Infinity","c":0.5},'
        '"float-properties":{"d":[3.5e38],"e":3.4028235E38},'
        '"string-properties":{"s":["' + "x" * 8192 + '","' + "y" * 8191 + '"]}'
    )

    batch = transcoded(body)

    assert batch is not None
    assert batch.unindexed == (3, 1)
    assert both(body)[0][2] == both(body)[1][2] == (3, 1)


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
    "an empty array": _java(',"string-properties":{"s":[]}'),
    "an array in an array": _java(',"string-properties":{"s":[["a"]]}'),
    "several values outside strings": _java(',"long-properties":{"n":[1,2]}'),
    "an unfinished array": _java(',"long-properties":{"n":[1}'),
    "NaN outside double and float": _java(',"long-properties":{"n":[NaN]}'),
    "NaN glued to a letter": _java(',"double-properties":{"n":NaNa}'),
    "nan in lower case": _java(',"double-properties":{"n":"nan"}'),
    "+Infinity": _java(',"double-properties":{"n":+Infinity}'),
    "an escaped NaN": _java(',"double-properties":{"n":"\\u004eaN"}'),
    "an empty system": _with({"system": ""}),
    "an empty agent id": _with({"agent-id": ""}),
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
    "a text over 32766 bytes": _with({"marker": "é" * 16384}),
    "int32 overflow": _with({"integer-properties": {"n": 2**31}}),
    "a fraction as an integer": _with({"integer-properties": {"n": 1.0}}),
    "a fraction as a long": _with({"long-properties": {"n": 1.5}}),
    "int64 overflow": b"["
    + _with({"long-properties": {"n": 1}})[1:-1].replace(b'"n":1', b'"n":9223372036854775808')
    + b"]",
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
    long = orjson.dumps([event(string_properties={"s": "x" * 100})])
    assert transcoded(long, Limits(max_string_length=100)) is not None
    assert transcoded(long, Limits(max_string_length=99)) is None
    old = Limits(oldest_timestamp=datetime(2026, 6, 1, 10, 0, 0, 1000, tzinfo=UTC))
    assert transcoded(body, old) is None


def test_the_newest_accepted_instant_is_one_whole_second_object_per_second() -> None:
    """`decode_batch` compares with the newest instant to the whole second; every request of a
    second gets the same object (whose rules the C path has at hand), even after an agent's
    check of the same second left an instant within it."""
    clock = 1_780_000_000.25
    newest = fastpath.newest_at(DEFAULT_LIMITS, clock)
    assert newest == datetime.fromtimestamp(1_780_000_000, UTC) + DEFAULT_LIMITS.max_future
    assert fastpath.newest_at(DEFAULT_LIMITS, clock + 0.5) is newest
    within = newest + timedelta(microseconds=300)
    assert fastpath.plain_each([orjson.dumps(event())], DEFAULT_LIMITS, within) is not None
    again = fastpath.newest_at(DEFAULT_LIMITS, clock + 0.6)
    assert again == newest
    assert again.microsecond == 0
    assert fastpath.newest_at(DEFAULT_LIMITS, clock + 1) == newest + timedelta(seconds=1)
    other = Limits(max_events=3)
    assert fastpath.newest_at(other, clock) is not newest


def test_the_newest_accepted_instant_is_that_of_the_clock_whatever_came_before() -> None:
    """Repeated answers are kept for the rest of their second; each is still the whole second
    of `clock + max_future`, at the ends of a second too (fractional futures included)."""
    for limits in (DEFAULT_LIMITS, Limits(max_future=timedelta(seconds=0.3))):
        ahead = limits.max_future.total_seconds()
        base = 1_780_000_000.0
        clocks = [base + step / 8 for step in range(40)]
        clocks += [base + 7 - ahead + d for d in (-1e-9, -1e-7, 0.0, 1e-7, 1e-9, 2e-6)]
        clocks += [base + 3.5, base + 2.25, base + 9.999999, base + 10.0000001]
        for clock in clocks + clocks[::-1]:
            expected = datetime.fromtimestamp(int(clock + ahead), UTC)
            assert fastpath.newest_at(limits, clock) == expected, (limits, clock)


def _names_batch(count: int, colliding: bool) -> bytes:
    """`count` distinct long-property names of 20 bytes, 200 to an event. Colliding names share
    their first and last 8 bytes (`AAAAAAAA` + 4 varying + `BBBBBBBB`), ordinary ones do not."""
    alphabet = string.ascii_letters + string.digits
    varying = ["".join(p) for p in itertools.islice(itertools.product(alphabet, repeat=4), count)]
    names = [f"AAAAAAAA{v}BBBBBBBB" if colliding else f"{v}AAAAAAAABBBBBBBB" for v in varying]
    return orjson.dumps(
        [event(long_properties=dict.fromkeys(names[i : i + 200], 1)) for i in range(0, count, 200)]
    )


def _best_seconds(body: bytes, limits: Limits, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        transcoded(body, limits)
        best = min(best, time.perf_counter() - started)
    return best


def test_property_names_chosen_to_collide_cost_no_more_than_ordinary_ones() -> None:
    """Hash flooding: 20000 names alike but for 4 bytes in the middle take about as long as
    20000 ordinary names of the same size (the one timing ratio the suite allows, bound 5x)."""
    colliding, ordinary = _names_batch(20_000, True), _names_batch(20_000, False)
    assert len(colliding) == len(ordinary)
    limits = replace(DEFAULT_LIMITS, max_fields=20_000)  # every name is hashed and kept
    assert transcoded(colliding, limits) is not None
    assert transcoded(ordinary, limits) is not None

    ratio = _best_seconds(colliding, limits) / _best_seconds(ordinary, limits)

    assert ratio < 5, f"colliding names took {ratio:.1f} times as long as ordinary ones"


def test_a_batch_with_more_distinct_properties_than_a_space_may_have_is_left_to_the_budget() -> (
    None
):
    """The C path stops counting names past `max_fields` (the space's property budget): such a
    batch can never be stored, and the slower path names every property over the budget."""
    body = _names_batch(1001, False)

    assert transcoded(body, replace(DEFAULT_LIMITS, max_fields=1001)) is not None
    assert transcoded(body, replace(DEFAULT_LIMITS, max_fields=1000)) is None
    fast, thorough = both(body, replace(DEFAULT_LIMITS, max_fields=1000))
    assert fast == thorough


def test_the_c_path_knows_the_event_model_of_events_py() -> None:
    """The C file's own copies of the event's fields and limits are those of `events.py`."""
    from logspace.events import (
        FAMILIES,
        INDEXED_STRING_LENGTH,
        MAX_ID_BYTES,
        MAX_TEXT_FIELD_BYTES,
        OPTIONAL_FIELDS,
        REQUIRED_FIELDS,
        format_instant,
    )
    from logspace.fastpath import _transcode

    assert set(_transcode.FIELD_NAMES) == {*REQUIRED_FIELDS, *OPTIONAL_FIELDS, *FAMILIES}
    assert _transcode.FIELD_NAMES[-len(FAMILIES) :] == tuple(FAMILIES)
    assert _transcode.MAX_TEXT_BYTES == MAX_TEXT_FIELD_BYTES
    assert _transcode.MAX_ID_BYTES == MAX_ID_BYTES
    assert _transcode.INDEXED_STRING_CHARS == INDEXED_STRING_LENGTH
    assert len(format_instant(NOW)) == _transcode.INSTANT_LENGTH


@pytest.mark.parametrize("partition", ["month", "quarter", "year"])
def test_both_paths_name_the_index_of_every_month_alike_in_each_partition(
    partition: Any,
) -> None:
    """An event of each month of a year (and the first and last instant of one) lands in the
    same index by the C path and the thorough one, as `partitions.period` names it."""
    stamps = [f"2025-{month:02}-15T08:30:00.000Z" for month in range(1, 13)]
    stamps += ["2025-01-01T00:00:00.000Z", "2025-12-31T23:59:59.999Z"]
    events = [make_event(timestamp=stamp) for stamp in stamps]
    body = orjson.dumps(events)

    fast = transcoder.transcode(body, "space", "p", DEFAULT_LIMITS, NOW, partition)
    thorough = bulk.encode([dict(e) for e in events], "space", "p", partition)

    assert fast is not None
    assert fast.events.body == thorough.body
    indices = [bulk.index_name("p", "space", stamp, partition) for stamp in stamps]
    assert fast.events.indices(range(len(stamps))) == list(dict.fromkeys(indices))


def test_the_c_path_refuses_a_partition_it_does_not_know() -> None:
    from logspace.fastpath import _transcode

    arguments = (b"[]", b"", b"", 1, 1, 1, 1, 1, STAMP.encode(), STAMP.encode())

    with pytest.raises(ValueError, match="partition must be 0"):
        _transcode.transcode(*arguments, 3)
