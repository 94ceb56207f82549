"""What the C path's tests share: the transcoder as HQ calls it, and events as agents write
them (hypothesis strategies: the common agents', and the original Java agents')."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from logspace.events import DEFAULT_LIMITS, Limits, format_instant
from logspace.ingest import transcoder
from logspace.testing import make_event

from .differential import NOW

STAMP = "2026-06-01T10:00:00.000Z"


def transcoded(body: bytes, limits: Limits = DEFAULT_LIMITS) -> transcoder.Transcoded | None:
    return transcoder.transcode(body, "space", "p", limits, NOW + limits.max_future)


def event(**fields: Any) -> dict[str, Any]:
    return make_event(timestamp=STAMP, **fields)


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


# Events as the original Java agents write them: every value in an array (strings maybe
# several), doubles and floats maybe NaN or infinite, no type or an empty marker at times.
def java_event(
    id_: str,
    type_: str | None,
    marker: str | None,
    stamp: str,
    doubles: dict[str, float],
    floats: dict[str, float],
    strings: dict[str, list[str]],
    longs: dict[str, int],
) -> dict[str, Any]:
    event: dict[str, Any] = {"id": id_}
    if type_ is not None:
        event["type"] = type_
    event |= {"system": "host", "agent-id": "jvm/app", "timestamp": stamp}
    if marker is not None:
        event["marker"] = marker
    for family, values in (
        ("double-properties", doubles),
        ("float-properties", floats),
        ("long-properties", longs),
    ):
        if values:
            event[family] = {name: [value] for name, value in values.items()}
    if strings:
        event["string-properties"] = strings
    return event


texts = st.text(min_size=1, max_size=12)
java_events = st.builds(
    java_event,
    texts.filter(lambda t: len(t.encode()) <= 512),
    st.none() | texts,
    st.none() | st.just("") | texts,
    stamps,
    st.dictionaries(names, st.floats(), max_size=3),
    st.dictionaries(names, st.floats(width=32) | st.floats(min_value=3.4e38), max_size=2),
    st.dictionaries(
        names,
        st.lists(st.text(max_size=8) | st.integers(8190, 8193).map("y".__mul__), min_size=1),
        max_size=2,
    ),
    st.dictionaries(names, st.integers(-(2**63), 2**63 - 1), max_size=2),
)


def java_body(batch: list[dict[str, Any]]) -> bytes:
    # Compact, non-ASCII as it is, NaN and Infinity bare: as Jackson writes them.
    return json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()
