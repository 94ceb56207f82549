"""The event: its fields, its seven typed property families, and the rules for their values.

An event travels as a JSON object (see `docs/api.md`) and is stored as the same object,
normalised, plus the `space` it was written to. Everything here is pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

__all__ = [
    "FAMILIES",
    "MAX_ID_BYTES",
    "MAX_PROPERTY_NAME_LENGTH",
    "MAX_TEXT_FIELD_LENGTH",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "BadValue",
    "check_property_name",
    "describe",
    "format_instant",
    "instant_bound",
    "member_path",
    "normalise_instant",
    "parse_instant",
]

REQUIRED_FIELDS: Final = ("id", "type", "system", "agent-id", "timestamp")
OPTIONAL_FIELDS: Final = ("pid", "gid", "marker")

# Elasticsearch refuses document ids above 512 bytes.
MAX_ID_BYTES: Final = 512
# Keyword terms above 32766 bytes make Elasticsearch reject a document; the metadata
# fields stay far below that so they are always searchable.
MAX_TEXT_FIELD_LENGTH: Final = 1024
MAX_PROPERTY_NAME_LENGTH: Final = 255

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
FLOAT32_MAX: Final = 3.4028234663852886e38


class BadValue(Exception):
    """A value that does not fit; the message says what was expected and what was found."""


def describe(value: Any) -> str:
    """Name a JSON value for an error message: `string "abc"`, `number 5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
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


def _float(value: Any) -> Any:
    if _number(value) and -FLOAT32_MAX <= value <= FLOAT32_MAX:
        return value
    raise BadValue(f"expected a number within the float32 range, found {describe(value)}")


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
