"""The event: its fields, its seven typed property families, and the rules for their values.

An event travels as a JSON object (see `docs/api.md`) and is stored as the same object,
normalised, plus the `space` it was written to. Everything here is pure.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

import orjson

__all__ = [
    "DEFAULT_LIMITS",
    "EVENT_FAMILIES",
    "FAMILIES",
    "INDEXED_STRING_LENGTH",
    "MAX_ID_BYTES",
    "MAX_PROPERTY_NAME_LENGTH",
    "MAX_TEXT_FIELD_BYTES",
    "NON_FINITE",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "BadValue",
    "Limits",
    "Unindexed",
    "check_property_name",
    "describe",
    "float32_overflows",
    "format_instant",
    "instant_bound",
    "member_path",
    "non_finite",
    "normalise_instant",
    "parse_instant",
    "unindexed",
]

# `type` is optional: the original Java agents' DefaultEventBuilder makes events without one.
REQUIRED_FIELDS: Final = ("id", "system", "agent-id", "timestamp")
# An optional text that is empty (a controller configured with `"marker": ""` sends one on
# every event) is stored as no value at all.
OPTIONAL_FIELDS: Final = ("type", "pid", "gid", "marker")

# Elasticsearch refuses document ids above 512 bytes.
MAX_ID_BYTES: Final = 512
# Lucene refuses terms above 32766 bytes, so a keyword field cannot hold a longer value; the
# original Logspace's Solr had the same limit on these fields.
MAX_TEXT_FIELD_BYTES: Final = 32766
MAX_PROPERTY_NAME_LENGTH: Final = 255
# String properties are indexed up to this many characters (`ignore_above` in
# index_templates/component-mappings.json; 4 bytes each stay within a term). Longer values
# are stored, and returned by reads, but not searchable.
INDEXED_STRING_LENGTH: Final = 8191
# The non-finite numbers, as the Java agents write them (bare) and as HQ stores them (quoted).
NON_FINITE: Final = ("NaN", "Infinity", "-Infinity")

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
FLOAT32_MAX: Final = 3.4028234663852886e38


@dataclass(frozen=True)
class Limits:
    """What one batch may hold; the defaults are those of `Settings`."""

    max_events: int = 10_000
    max_properties: int = 200
    # A batch with more distinct properties than a space may have is refused by the budget
    # whatever the space holds; the C path stops counting there (`budget.FieldBudget`).
    max_fields: int = 1000
    max_property_name_length: int = MAX_PROPERTY_NAME_LENGTH
    # Far above what agents send (a stack trace); a value cannot be longer than a body anyway.
    max_string_length: int = 10_485_760
    oldest_timestamp: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_future: timedelta = timedelta(days=1)


DEFAULT_LIMITS = Limits()


class BadValue(Exception):
    """A value that does not fit; the message says what was expected and what was found."""


def describe(value: Any) -> str:
    """Name a JSON value for an error message: `string "abc"`, `number 5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite_name(value)
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"string {shown!r}" if value else "an empty string"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - JSON has no other types


def normalise_instant(value: Any) -> str:
    """ISO-8601 date-time with an offset -> UTC, e.g. `2015-05-18T12:07:00.000Z`."""
    return format_instant(parse_instant(value))


def format_instant(instant: datetime) -> str:
    """UTC with milliseconds, or microseconds where there are any."""
    spec = "microseconds" if instant.microsecond % 1000 else "milliseconds"
    return instant.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def instant_bound(instant: datetime, *, up: bool = False) -> str:
    """The canonical instant nearest `instant` on its inner side (rounded to milliseconds,
    `up` for a lower bound): canonical instants then compare with it as strings do."""
    instant = instant.astimezone(UTC)
    if up and instant.microsecond % 1000:
        instant += timedelta(microseconds=1000 - instant.microsecond % 1000)
    return instant.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_instant(value: Any) -> datetime:
    """ISO-8601 date-time with an offset or Z -> an aware datetime in UTC."""
    if not isinstance(value, str):
        raise BadValue(f"expected an ISO-8601 date-time string, found {describe(value)}")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(
            f"expected an ISO-8601 date-time such as 2015-05-18T14:07:00Z, found {describe(value)}"
        ) from None
    offset = instant.utcoffset()
    if offset is None:
        raise BadValue(
            f"expected a date-time with a UTC offset or Z, found {describe(value)} without one"
        )
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise BadValue(f"date-time {value!r} is out of range in UTC") from None


def _boolean(value: Any) -> Any:
    if value is True or value is False:
        return value
    raise BadValue(f"expected true or false, found {describe(value)}")


def _number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _double(value: Any) -> Any:
    if _number(value) and math.isfinite(value):
        return value
    raise BadValue(f"expected a finite number, found {describe(value)}")


def float32_overflows(value: float) -> bool:
    """Whether a finite number becomes infinite as a float32, as Java's `(float)` and
    Elasticsearch's float fields round it (3.4028235e38, Float.MAX_VALUE's text, does not)."""
    try:
        struct.pack("<f", value)
    except OverflowError:
        return True
    return False


def _float(value: Any) -> Any:
    if _number(value) and math.isfinite(value) and not float32_overflows(value):
        return value
    raise BadValue(f"expected a number within the float32 range, found {describe(value)}")


def _non_finite_name(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def non_finite(value: Any) -> str | None:
    """The stored form (`"NaN"`, `"Infinity"`, `"-Infinity"`) of a non-finite number, sent
    as a bare token (which `decode` reads as a float) or quoted; None for any other value."""
    if type(value) is float and not math.isfinite(value):
        return _non_finite_name(value)
    if type(value) is str and value in NON_FINITE:
        return value
    return None


def _double_stored(value: Any) -> Any:
    text = non_finite(value)
    if text is not None:
        return text
    if _number(value) and math.isfinite(value):
        return value
    raise BadValue(f"expected a number, NaN, Infinity or -Infinity, found {describe(value)}")


def _integer(value: Any) -> Any:
    if type(value) is int and INT32_MIN <= value <= INT32_MAX:
        return value
    raise BadValue(f"expected an integer within int32, found {describe(value)}")


def _long(value: Any) -> Any:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    raise BadValue(f"expected an integer within int64, found {describe(value)}")


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    raise BadValue(f"expected a string, found {describe(value)}")


# Family name -> (value check, may hold several values). Only string properties are
# multi-valued, as in the original Logspace.
FAMILIES: Final[dict[str, tuple[Callable[[Any], Any], bool]]] = {
    "boolean-properties": (_boolean, False),
    "date-properties": (normalise_instant, False),
    "double-properties": (_double, False),
    "float-properties": (_float, False),
    "integer-properties": (_integer, False),
    "long-properties": (_long, False),
    "string-properties": (_string, True),
}

# What an event may carry: the values of FAMILIES, and also those Elasticsearch stores but
# cannot index in a double or float field (the original Logspace stored them): NaN and
# ±Infinity, kept as the strings of NON_FINITE, and numbers beyond float32 in
# `float-properties`, kept as sent. `unindexed` counts them.
EVENT_FAMILIES: Final[dict[str, tuple[Callable[[Any], Any], bool]]] = {
    **FAMILIES,
    "double-properties": (_double_stored, False),
    "float-properties": (_double_stored, False),
}


class Unindexed(NamedTuple):
    """Property values stored but not indexed by Elasticsearch: non-finite numbers (and
    float32 overflows), and strings longer than INDEXED_STRING_LENGTH."""

    non_finite: int = 0
    long_strings: int = 0


def unindexed(events: Iterable[dict[str, Any]]) -> Unindexed:
    """What of these normalised events Elasticsearch will store without indexing it."""
    numbers = strings = 0
    for event in events:
        for value in (event.get("double-properties") or {}).values():
            numbers += type(value) is str
        for value in (event.get("float-properties") or {}).values():
            numbers += type(value) is str or (type(value) is float and float32_overflows(value))
        for value in (event.get("string-properties") or {}).values():
            for item in value if type(value) is list else (value,):
                strings += len(item) > INDEXED_STRING_LENGTH
    return Unindexed(numbers, strings)


_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def member_path(path: str, name: str) -> str:
    """A JSON path one member deeper: `$[0].long-properties` + `a.b` -> `...["a.b"]`."""
    if _SIMPLE_NAME.fullmatch(name):
        return f"{path}.{name}"
    return f"{path}[{orjson.dumps(name).decode()}]"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_property_name(name: str, max_length: int = MAX_PROPERTY_NAME_LENGTH) -> None:
    """Names become Elasticsearch field names, so no empty parts between dots."""
    if not name or name.isspace():
        raise BadValue("property names must not be empty or blank")
    if len(name) > max_length:
        raise BadValue(f"property names must be at most {max_length} characters, found {len(name)}")
    if name[0] == "." or name[-1] == "." or ".." in name:
        raise BadValue(
            f"property name {name!r} has an empty part between dots "
            "(a leading, trailing or doubled dot)"
        )
    if _CONTROL.search(name):
        raise BadValue(f"property name {name!r} contains a control character")
