"""Request events written straight as JSON (`RequestEvents.encoded`) are byte for byte the
events `asgi_events` and `wsgi_events` build, stamped by a sender and encoded by
`encode_event`; a group the rules do not all accept goes the thorough way."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.agent import requestevent
from logspace.agent.builder import encode_event, random_ids
from logspace.agent.draft import Stamp, encode_drafts
from logspace.agent.eventjson import heads, stamp_json, tail_json
from logspace.agent.requestevent import asgi_events, wsgi_events
from logspace.agent.shipper import Dropped

NOW_NS = time.time_ns()
# The C extension's writer (tests/ingest/test_transcoder.py fails where it is not built).
asgi_json = requestevent._asgi_json
needs_c = pytest.mark.skipif(asgi_json is None, reason="the C extension is not built")

# Arrivals over days, or a few seconds apart (the C writer fills in the milliseconds of a
# second it has the timestamp of), around now and around the epoch.
arrivals = st.integers(NOW_NS - 10**15, NOW_NS) | st.builds(
    lambda base, second, ms, ns: (base + second) * 10**9 + ms * 10**6 + ns,
    st.sampled_from([0, NOW_NS // 10**9]),
    st.integers(-2, 2),
    st.integers(0, 999),
    st.integers(0, 999_999),
)
texts = st.text(max_size=12)
maybe_bytes = st.none() | st.binary(max_size=12)
stamps = st.builds(Stamp, st.none() | texts, st.none() | texts)
asgi_values = st.tuples(
    st.sampled_from(["http/request", 'we"ird\u00e9']),
    st.sampled_from(["http/asgi", "agent\\x"]),
    arrivals,
    st.integers(0, 10**12),
    st.sampled_from(["http", "https", "ws"]),
    st.none() | st.tuples(texts, st.none() | st.integers(0, 65535)),
    texts,
    st.binary(max_size=12),
    st.sampled_from(["GET", "POST", "PÜT"]),
    st.none() | st.tuples(texts, st.integers(0, 65535)),
    st.none() | st.sampled_from([b"example.com", b"[::1]:8000", b"h:80", b"\xff\x00"]),
    maybe_bytes,
    st.integers(100, 599),
    maybe_bytes,
)
wsgi_values = st.tuples(
    st.just("http/request"),
    st.just("http/wsgi"),
    st.integers(NOW_NS - 10**15, NOW_NS),
    st.integers(0, 10**12),
    st.sampled_from(["http", "https"]),
    st.none() | texts,
    st.none() | texts,
    st.sampled_from(["", "80", "8080", "x"]),
    texts,
    texts,
    texts,
    st.sampled_from(["GET", "HEAD"]),
    st.none() | texts,
    st.none() | texts,
    st.sampled_from(["200 OK", "404 Not Found", "302 Found"]),
    st.none() | texts,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(asgi_values, min_size=1, max_size=6), stamps)
def test_asgi_events_written_straight_are_those_built_and_encoded(
    values: list[Any], stamp: Stamp
) -> None:
    ids = random_ids(len(values))
    straight = asgi_events.encoded(values, ids, stamp.system, stamp.marker)
    assert straight == [orjson_of(stamp(event)) for event in asgi_events(values, ids)]


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(asgi_values, min_size=1, max_size=6), stamps)
def test_asgi_events_written_in_c_are_those_written_in_python(
    values: list[Any], stamp: Stamp
) -> None:
    """The C extension writes the ASGI drafts' JSON (`asgi_events.encoded`); without it, or
    for a group it declines, Python does: the same bytes either way."""
    ids = random_ids(len(values))
    in_python = asgi_events.encoded_in_python(values, ids, stamp.system, stamp.marker)
    assert asgi_json is not None
    assert asgi_json(values, ids, *c_callables(stamp)) is not None
    assert asgi_events.encoded(values, ids, stamp.system, stamp.marker) == in_python
    assert in_python == [orjson_of(stamp(event)) for event in asgi_events(values, ids)]


GOOD = ("http/request", "http/asgi", NOW_NS, 1000, "http", ("example.com", 80), "/ok", b"q=1",
        "GET", ("10.0.0.1", 5000), b"example.com", b"r-1", 200, b"/next")  # fmt: skip


@pytest.mark.parametrize(
    ("place", "value"),
    [
        (12, "201"),  # a status that is no int: `int()` takes it, C declines
        (12, True),
        (6, "/\ud800"),  # a lone surrogate: no UTF-8, orjson refuses it too
        (7, bytearray(b"q=1")),
        (9, ["10.0.0.1", 5000]),  # a list for a tuple: Python indexes it alike
        (9, ()),
        (9, ("", 1)),
        (11, b""),
        (13, None),
        (2, 2**70),  # beyond 64 bits
    ],
)
def test_a_draft_the_c_path_does_not_take_as_is_gets_what_python_writes(
    place: int, value: Any
) -> None:
    draft = (*GOOD[:place], value, *GOOD[place + 1 :])
    ids = random_ids(2)
    stamp = Stamp("web-1", None)
    try:
        expected: list[bytes] | type[Exception] = asgi_events.encoded_in_python(
            [GOOD, draft], ids, stamp.system, stamp.marker
        )
    except Exception as error:
        expected = type(error)
    if isinstance(expected, list):
        assert asgi_events.encoded([GOOD, draft], ids, stamp.system, stamp.marker) == expected
    else:
        with pytest.raises(expected):
            asgi_events.encoded([GOOD, draft], ids, stamp.system, stamp.marker)


@needs_c
def test_the_c_path_works_out_head_time_and_place_only_when_they_change() -> None:
    calls: list[str] = []
    head, stamp, where, tail = c_callables(Stamp(None, None))

    def counting(name: str, call: Any) -> Any:
        def counted(*args: Any) -> Any:
            calls.append(name)
            return call(*args)

        return counted

    assert asgi_json is not None
    second = (NOW_NS // 10**9) * 10**9
    first = (*GOOD[:2], second + 100_000_000, *GOOD[3:])
    later = (*GOOD[:2], second + 105_000_000, *GOOD[3:])
    other_host = (*first[:10], b"other.example", *first[11:])
    next_second = (*GOOD[:2], second + 1_500_000_000, *GOOD[3:])
    written = asgi_json(
        [first, first, later, other_host, next_second],
        random_ids(5),
        counting("head", head),
        counting("stamp", stamp),
        counting("where", where),
        tail,
    )
    assert written is not None
    # The timestamp once a second (the C writer fills in the milliseconds).
    assert sorted(calls) == ["head", "stamp", "stamp", "where", "where", "where"]
    milliseconds = [orjson.loads(body)["timestamp"][-5:] for body in written]
    assert milliseconds == [".100Z", ".100Z", ".105Z", ".100Z", ".500Z"]


@needs_c
def test_a_timestamp_without_milliseconds_to_fill_in_is_asked_for_each_millisecond() -> None:
    head, _, where, tail = c_callables(Stamp(None, None))
    asked: list[int] = []

    def stamp(milliseconds: int) -> bytes:
        asked.append(milliseconds)
        return b"t%d" % milliseconds

    drafts = [(*GOOD[:2], ms * 10**6, *GOOD[3:]) for ms in (5000, 5001, 5001, 5999, 6000)]
    assert asgi_json is not None
    written = asgi_json(drafts, random_ids(5), head, stamp, where, tail)
    assert written is not None
    assert [orjson.loads(body)["timestamp"] for body in written] == [
        "t5000",
        "t5001",
        "t5001",
        "t5999",
        "t6000",
    ]
    # Each second's first millisecond (does it end in .000Z?), then each other millisecond.
    assert asked == [5000, 5001, 5999, 6000]
    # A timestamp too long to keep: the C writer declines, Python writes the group.
    assert asgi_json(drafts, random_ids(5), head, lambda ms: b"9" * 65, where, tail) is None


def c_callables(stamp: Stamp) -> tuple[Any, Any, Any, bytes]:
    """What `asgi_events.encoded` hands the C extension for drafts stamped by `stamp`."""
    return (
        heads(stamp.system),
        stamp_json,
        requestevent._asgi_where,
        tail_json(stamp.marker),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(wsgi_values, min_size=1, max_size=6), stamps)
def test_wsgi_events_written_straight_are_those_built_and_encoded(
    values: list[Any], stamp: Stamp
) -> None:
    ids = random_ids(len(values))
    straight = wsgi_events.encoded(values, ids, stamp.system, stamp.marker)
    assert straight == [orjson_of(stamp(event)) for event in wsgi_events(values, ids)]


def orjson_of(event: dict[str, Any]) -> bytes:
    """What `encode_event` writes for an event the rules accept."""
    return orjson.dumps(event)


def test_a_group_with_an_event_the_rules_refuse_is_judged_event_by_event() -> None:
    """A request stamped 1970 by a wrong clock: the C rules decline the group written
    straight, and the thorough path keeps the others and drops that one as `invalid`."""
    good = ("http/request", "http/asgi", NOW_NS, 1000, "http", None, "/ok", b"", "GET",
            None, b"example.com", None, 200, None)  # fmt: skip
    bad = (*good[:2], 0, *good[3:])
    stamp = Stamp("web-1", "m")

    results = encode_drafts([(asgi_events, good, 400), (asgi_events, bad, 400)], stamp)

    first, second = results
    assert isinstance(first, bytes)
    assert isinstance(second, Dropped)
    assert second.reason == "invalid"
    assert b'"path":"/ok"' in first
    assert b'"system":"web-1"' in first
    assert first == asgi_events.encoded([good], [orjson.loads(first)["id"]], "web-1", "m")[0]
    assert first == encode_event(stamp(asgi_events([good], [orjson.loads(first)["id"]])[0]))
