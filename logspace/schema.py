"""The common event, checked in C: the fast path of `decode.decode_batch`.

Most batches hold events like the ones agents send every second: every field a value of its
family's type (or, from the original Java agents, an array of one), timestamps in UTC.
`accept` validates such a batch with msgspec (types, ranges, lengths, required and unknown
fields, all while parsing), then checks what msgspec cannot say (property names, the timestamp
window, properties per event) on whole columns of the batch at once. It accepts a batch only
when `decode.decode` would accept it with the same result (tests/test_decode_batch.py holds the
two to that); for anything else it returns None, and `decode.decode` checks the batch again
and names every problem.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .budget import Use
from .events import (
    FLOAT32_MAX,
    INDEXED_STRING_LENGTH,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    MAX_ID_BYTES,
    MAX_TEXT_FIELD_BYTES,
    BadValue,
    Unindexed,
    check_property_name,
    instant_bound,
    normalise_instant,
)

if TYPE_CHECKING:
    from .decode import Limits

__all__ = ["FAMILY_FIELDS", "Accepted", "accept"]


# msgspec reads integers of any size, orjson (in `decode.decode`) those of 64 bits; the few
# between 2**63 and 2**64 are left to `decode.decode`.
_JSON_INT = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
# Texts of up to this many characters are within the byte limit whatever they hold; longer
# ones, and empty ones (which `decode.decode` leaves out), are left to `decode.decode`.
_TEXT = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_FIELD_BYTES // 4)]
_DOUBLE_MAX = 1.7976931348623157e308


# The wire names of the property families, in the order of the event's fields.
FAMILY_FIELDS = (
    "boolean-properties",
    "date-properties",
    "double-properties",
    "float-properties",
    "integer-properties",
    "long-properties",
    "string-properties",
)


def _optional(kind: Any) -> Any:
    return kind | UnsetType


def _properties(name: Any, value: Any) -> Any:
    # The original Java agents send every value as an array: `_unwrap_arrays` sorts them out.
    return dict[name, value | list[value]] | UnsetType


@functools.lru_cache(maxsize=8)
def _decoder(max_string: int) -> msgspec.json.Decoder[Any]:
    """A decoder of event arrays with these limits; its events encode to the stored documents
    (absent fields stay absent, `space` comes last once set).

    What Elasticsearch stores without indexing (NaN and Infinity, which msgspec does not read
    anyway, numbers beyond float32, strings longer than INDEXED_STRING_LENGTH) and what
    `decode.decode` leaves out (a missing or empty `type`, empty texts, empty arrays) are
    left to `decode.decode`, which counts or normalises them."""
    # Property names are checked once per batch in `_fields`; a constraint here would cost
    # a check per property (and msgspec's cache of repeated keys).
    name = str
    finite = Annotated[float, Meta(ge=-_DOUBLE_MAX, le=_DOUBLE_MAX)]
    float32 = Annotated[float, Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
    int32 = Annotated[int, Meta(ge=INT32_MIN, le=INT32_MAX)]
    int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
    string = Annotated[str, Meta(max_length=min(max_string, INDEXED_STRING_LENGTH))]
    event = msgspec.defstruct(
        "WireEvent",
        [
            ("id", _TEXT),
            ("type", _TEXT),
            ("system", _TEXT),
            ("agent_id", _TEXT),
            ("timestamp", str),
            ("pid", _optional(_TEXT), UNSET),
            ("gid", _optional(_TEXT), UNSET),
            ("marker", _optional(_TEXT), UNSET),
            ("boolean_properties", _properties(name, bool), UNSET),
            ("date_properties", _properties(name, str), UNSET),
            ("double_properties", _properties(name, finite | _JSON_INT), UNSET),
            ("float_properties", _properties(name, float32 | _JSON_INT), UNSET),
            ("integer_properties", _properties(name, int32), UNSET),
            ("long_properties", _properties(name, int64), UNSET),
            ("string_properties", _properties(name, string), UNSET),
            # Set by `bulk.encode`; an event that brings its own is left to `decode.decode`.
            ("space", _optional(str), UNSET),
        ],
        forbid_unknown_fields=True,
        gc=False,
        rename="kebab",
    )
    return msgspec.json.Decoder(list[event])  # type: ignore[valid-type]


class _Reject(Exception):
    """Something `decode.decode` must look at."""


_ID = attrgetter("id")
_SPACE = attrgetter("space")
_TIMESTAMP = attrgetter("timestamp")
_DATES = attrgetter("date_properties")
_FAMILIES = tuple(attrgetter(f.replace("-", "_")) for f in FAMILY_FIELDS)
# Instants in the form `normalise_instant` writes when there are no microseconds (most agents
# send this), with every digit read as 0: a whole column of them is checked in one comparison.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_CANONICAL_SHAPE = b"0000-00-00T00:00:00.000Z"


class Accepted:
    """A batch the fast path accepted: its events, and the property fields they use."""

    def __init__(self, events: list[Any], fields: set[str]) -> None:
        self.events = events
        self.fields = fields
        # Every value of an accepted batch is one Elasticsearch indexes (see `_decoder`).
        self.unindexed = Unindexed()

    def uses(self, fields: Collection[str]) -> list[Use]:
        """In batch order (only error answers need this, so it may be slow)."""
        wanted = set(fields)
        return [
            (index, event.id, family, name)
            for index, event in enumerate(self.events)
            for family, column in zip(FAMILY_FIELDS, _FAMILIES, strict=True)
            for name in column(event) or ()
            if f"{family}.{name}" in wanted
        ]


def accept(body: bytes, limits: Limits, newest: datetime) -> Accepted | None:
    """The events of a common batch, normalised; None when `decode.decode` must check it.

    Everything here works on whole columns of the batch (all timestamps, all string
    properties, ...) with C-level map, join and set operations: per event, Python does nothing.
    """
    try:
        events: list[Any] = _decoder(limits.max_string_length).decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        # msgspec reads field names as UTF-8 before it checks them: a bad byte in one is
        # a UnicodeDecodeError, which `decode.decode` explains like any invalid JSON.
        return None
    if len(events) > limits.max_events or set(map(_SPACE, events)) - {UNSET}:
        return None
    try:
        _check_ids(events)
        _check_timestamps(events, limits.oldest_timestamp, newest)
        if body.find(b"[", 1) != -1:  # an array besides the batch itself, maybe a property's
            _unwrap_arrays(events)
        _normalise_dates(events)
        fields = _fields(events, limits.max_property_name_length, limits.max_properties)
    except (_Reject, BadValue, ValueError, msgspec.ValidationError):
        return None
    return Accepted(events, fields)


def _check_ids(events: list[Any]) -> None:
    longest = max(map(len, map(_ID, events)), default=0)
    # Four bytes per character at most: only long ids need encoding to be measured.
    if longest * 4 > MAX_ID_BYTES:
        for event in events:
            if len(event.id.encode()) > MAX_ID_BYTES:
                raise _Reject


def _check_timestamps(events: list[Any], oldest: datetime, newest: datetime) -> None:
    timestamps = list(map(_TIMESTAMP, events))
    if _all_canonical(timestamps):
        # Canonical instants sort as strings do; the bounds are rounded inwards to milliseconds.
        if timestamps and (
            min(timestamps) < instant_bound(oldest, up=True)
            or max(timestamps) > instant_bound(newest)
        ):
            raise _Reject
        return
    for event in events:
        value = normalise_instant(event.timestamp)
        instant = datetime.fromisoformat(value)
        if not oldest <= instant <= newest:
            raise _Reject
        event.timestamp = value


def _unwrap_arrays(events: list[Any]) -> None:
    """A single value in an array stands for the value; only string properties may hold
    several; an empty array is no value at all (`decode.decode` says so)."""
    for family, column in zip(FAMILY_FIELDS, _FAMILIES, strict=True):
        several = family == "string-properties"
        for properties in filter(None, map(column, events)):
            for name, value in properties.items():
                if type(value) is list:
                    if len(value) == 1:
                        properties[name] = value[0]
                    elif not value or not several:
                        raise _Reject


def _normalise_dates(events: list[Any]) -> None:
    columns = list(filter(None, map(_DATES, events)))
    if not columns or _all_canonical(list(chain.from_iterable(map(dict.values, columns)))):
        return
    for dates in columns:
        for name, value in dates.items():
            dates[name] = normalise_instant(value)


def _all_canonical(instants: list[str]) -> bool:
    """Every instant in the form `normalise_instant` writes, and a real one."""
    joined = "".join(instants).encode("ascii", "replace")
    if joined.translate(_DIGITS_AS_ZERO) != _CANONICAL_SHAPE * len(instants):
        return False
    # Month 13, 30 February, 24:00, year 0: ValidationError; decode.decode names the problem.
    msgspec.convert(instants, list[datetime])
    return True


def _fields(events: list[Any], max_name: int, max_properties: int) -> set[str]:
    """Every property field (`family.name`); each name is checked once per batch, and the
    properties are counted event by event only where an event might hold too many."""
    fields = set()
    for family, column in zip(FAMILY_FIELDS, _FAMILIES, strict=True):
        for name in set().union(*filter(None, map(column, events))):
            check_property_name(name, max_name)
            fields.add(f"{family}.{name}")
    # No event holds more properties than the batch has distinct ones: only batches with
    # many distinct properties need counting event by event.
    if len(fields) > max_properties:
        for event in events:
            if sum(len(column(event) or ()) for column in _FAMILIES) > max_properties:
                raise _Reject
    return fields
