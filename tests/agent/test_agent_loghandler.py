"""Log events written straight as JSON (`log_events.encoded`, in C where the extension is
built) are byte for byte the events `log_events` builds, stamped by a sender and encoded by
orjson; a group the C writer does not take as is gets exactly what Python writes."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logspace.agent import loghandler
from logspace.agent.builder import instant_from_timestamp, random_ids
from logspace.agent.draft import Stamp, encode_drafts
from logspace.agent.eventjson import heads, stamp_json, tail_json
from logspace.agent.loghandler import log_events
from logspace.agent.shipper import Dropped

NOW = time.time()
# The C extension's writer (tests/ingest/test_transcoder.py fails where it is not built).
log_json = loghandler._log_json
needs_c = pytest.mark.skipif(log_json is None, reason="the C extension is not built")

texts = st.text(max_size=12)
stamps = st.builds(Stamp, st.none() | texts, st.none() | texts)
# Times of any microsecond, some exactly half way between two (rounded half to even), and
# some a few seconds apart (the C writer fills in the milliseconds of a second it has the
# timestamp of).
createds = (
    st.floats(NOW - 10**8, NOW + 10**6)
    | st.integers(0, 10**6).map(lambda n: float(int(NOW)) + (n + 0.5) / 1_000_000)
    | st.builds(
        lambda second, ms: float(int(NOW) + second) + ms / 1000,
        st.integers(-2, 2),
        st.integers(0, 999),
    )
)
log_values = st.tuples(
    st.sampled_from(["log", 'we"ird\u00e9']),
    st.sampled_from(["log", "agent\\x"]),
    createds,
    texts,
    st.text(max_size=40),
    st.sampled_from(["INFO", "ERROR", "LEVEL\t5"]),
    st.integers(-(2**63), 2**63 - 1),
    texts,
    texts,
    st.integers(0, 10**6),
    texts,
    st.none() | st.text(max_size=40),
)


def built_and_encoded(values: list[Any], ids: list[str], stamp: Stamp) -> list[bytes]:
    """What the events `log_events` builds, stamped, encode to."""
    return [orjson.dumps(stamp(event)) for event in log_events(values, ids)]


@settings(max_examples=300, deadline=None)
@given(st.lists(log_values, min_size=1, max_size=6), stamps)
def test_log_events_written_straight_are_those_built_and_encoded(
    values: list[Any], stamp: Stamp
) -> None:
    ids = random_ids(len(values))
    straight = log_events.encoded(values, ids, stamp.system, stamp.marker)
    assert straight == built_and_encoded(values, ids, stamp)


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(log_values, min_size=1, max_size=6), stamps)
def test_the_c_writer_takes_every_group_of_ordinary_values(values: list[Any], stamp: Stamp) -> None:
    """Not a decline in disguise: C itself wrote them, the same bytes Python builds."""
    ids = random_ids(len(values))
    assert log_json is not None
    written = log_json(values, ids, *c_callables(stamp))
    assert written == built_and_encoded(values, ids, stamp)


def test_the_timestamp_is_the_records_creation_time_to_the_millisecond() -> None:
    created = 1_700_000_000.0015  # held as 1_700_000_000.00149998...: 001, not 002
    draft = (*GOOD[:2], created, *GOOD[3:])
    [written] = log_events.encoded([draft], random_ids(1), None, None)
    assert orjson.loads(written)["timestamp"] == "2023-11-14T22:13:20.001Z"
    assert orjson.loads(written)["timestamp"] == instant_from_timestamp(created)


GOOD = ("log", "log", NOW, "shop.orders", "order 7 shipped", "INFO", 20, "orders",
        "ship", 42, "MainThread", None)  # fmt: skip


@pytest.mark.parametrize(
    ("place", "value"),
    [
        (2, 1_700_000_000),  # an int for a time: Python takes it, C declines
        (2, math.nan),  # no time at all: Python raises, as before
        (2, math.inf),
        (2, -1e300),
        (4, "lone \ud800"),  # no UTF-8: orjson refuses it too
        (4, 42),  # a message that is no text
        (6, True),  # orjson writes a bool
        (9, 2**70),  # beyond 64 bits: orjson refuses it
        (11, "Traceback ...\n"),
        (11, b"bytes"),
        (10, None),
    ],
)
def test_a_draft_the_c_writer_does_not_take_as_is_gets_what_python_writes(
    place: int, value: Any
) -> None:
    draft = (*GOOD[:place], value, *GOOD[place + 1 :])
    ids = random_ids(2)
    stamp = Stamp("web-1", "m")
    try:
        expected: list[bytes] | type[Exception] = built_and_encoded([GOOD, draft], ids, stamp)
    except Exception as error:
        expected = type(error)
    if isinstance(expected, list):
        assert log_events.encoded([GOOD, draft], ids, stamp.system, stamp.marker) == expected
    else:
        with pytest.raises(expected):
            log_events.encoded([GOOD, draft], ids, stamp.system, stamp.marker)


@needs_c
def test_the_c_writer_works_out_head_and_time_only_when_they_change() -> None:
    calls: list[str] = []
    head, stamp, tail = c_callables(Stamp(None, None))

    def counting(name: str, call: Any) -> Any:
        def counted(*args: Any) -> Any:
            calls.append(name)
            return call(*args)

        return counted

    assert log_json is not None
    second = float(int(NOW))
    first = (*GOOD[:2], second + 0.1, *GOOD[3:])
    same_millisecond = (*GOOD[:2], second + 0.1000001, *GOOD[3:])
    later = (*GOOD[:2], second + 0.105, *GOOD[3:])
    other_agent = (first[0], "worker", *first[2:])
    next_second = (*GOOD[:2], second + 1.5, *GOOD[3:])
    written = log_json(
        [first, same_millisecond, later, other_agent, next_second],
        random_ids(5),
        counting("head", head),
        counting("stamp", stamp),
        tail,
    )
    assert written is not None
    # The timestamp once a second (the C writer fills in the milliseconds).
    assert sorted(calls) == ["head", "head", "head", "stamp", "stamp"]
    milliseconds = [orjson.loads(body)["timestamp"][-5:] for body in written]
    assert milliseconds == [".100Z", ".100Z", ".105Z", ".100Z", ".500Z"]


def c_callables(stamp: Stamp) -> tuple[Any, Any, bytes]:
    """What `log_events.encoded` hands the C extension for drafts stamped by `stamp`."""
    return heads(stamp.system), stamp_json, tail_json(stamp.marker)


def test_a_record_the_rules_refuse_is_dropped_alone() -> None:
    """A record stamped 1970 by a wrong clock: the C rules decline the group written
    straight, and the thorough path keeps the other record and drops that one as `invalid`."""
    bad = (*GOOD[:2], 0.5, *GOOD[3:])
    results = encode_drafts([(log_events, GOOD, 400), (log_events, bad, 400)], Stamp(None, "m"))

    first, second = results
    assert isinstance(first, bytes)
    assert isinstance(second, Dropped)
    assert second.reason == "invalid"
    event = orjson.loads(first)
    assert event["string-properties"]["message"] == "order 7 shipped"
    assert event["marker"] == "m"
    assert first == log_events.encoded([GOOD], [event["id"]], None, "m")[0]
