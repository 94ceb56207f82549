"""Request events written straight as JSON (`RequestEvents.encoded`) are byte for byte the
events `asgi_events` and `wsgi_events` build, stamped by a sender and encoded by
`encode_event`; a group the rules do not all accept goes the thorough way."""

from __future__ import annotations

import time
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.agent.builder import encode_event, random_ids
from logspace.agent.draft import Stamp, encode_drafts
from logspace.agent.requestevent import asgi_events, wsgi_events
from logspace.agent.shipper import Dropped

NOW_NS = time.time_ns()

texts = st.text(max_size=12)
maybe_bytes = st.none() | st.binary(max_size=12)
stamps = st.builds(Stamp, st.none() | texts, st.none() | texts)
asgi_values = st.tuples(
    st.sampled_from(["http/request", 'we"ird\u00e9']),
    st.sampled_from(["http/asgi", "agent\\x"]),
    st.integers(NOW_NS - 10**15, NOW_NS),
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
