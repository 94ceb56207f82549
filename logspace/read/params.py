"""Request parameters: read by name and type, each problem a 400 naming the parameter. Pure.

The read endpoints take the same parameters from a query string (GET) or a JSON object
(POST). A query string only has text, so `Params.from_query` marks its values as text and
the readers convert them (`size=10` is the integer 10, `where=...` is JSON text); in a JSON
body every value must already have its JSON type. Whatever nobody asked for is an error
(`finish`), so a misspelt parameter is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from logspace.errors import InvalidParameter
from logspace.events import describe

__all__ = ["FIRST_MILLIS", "LAST_MILLIS", "MISSING", "Params", "format_instant", "parse_instant"]

MISSING: Final[Any] = object()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Years 1 to 9999 in UTC, what `datetime` (and so `format_instant`) can show.
FIRST_MILLIS: Final = -62_135_596_800_000
LAST_MILLIS: Final = 253_402_300_799_999


def parse_instant(value: Any, parameter: str) -> int:
    """An ISO-8601 date-time with `Z` or an offset -> epoch milliseconds."""
    if not isinstance(value, str):
        raise InvalidParameter(parameter, f"expected a date-time string, found {describe(value)}")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(
            parameter,
            f"expected an ISO-8601 date-time such as 2015-05-18T14:07:00Z, found {describe(value)}",
        ) from None
    if instant.utcoffset() is None:
        raise InvalidParameter(parameter, f"{value!r} has no UTC offset; add Z or e.g. +02:00")
    if instant.microsecond % 1000:
        raise InvalidParameter(parameter, f"{value!r} is more precise than milliseconds")
    delta = instant - _EPOCH
    millis = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if not FIRST_MILLIS <= millis <= LAST_MILLIS:
        raise InvalidParameter(parameter, f"{value!r} is outside the years 1 to 9999 in UTC")
    return millis


def format_instant(millis: int | float) -> str:
    """Epoch milliseconds -> `2015-05-18T14:07:00.000Z`."""
    instant = _EPOCH + timedelta(milliseconds=round(millis))
    return instant.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class Params:
    """Named parameters at `path` (empty at the top, `definitions[0]` further down)."""

    def __init__(
        self, values: Mapping[str, Any], *, text_keys: Collection[str] = (), path: str = ""
    ) -> None:
        self._values = values
        # Names whose values came from a query string, so are text to convert.
        self._text_keys = frozenset(text_keys)
        self._path = path
        self._asked: list[str] = []

    @classmethod
    def from_query(cls, items: Iterable[tuple[str, str]]) -> Params:
        """A query string's items; a repeated name becomes a list of its values."""
        values: dict[str, Any] = {}
        for name, value in items:
            if name in values:
                previous = values[name]
                values[name] = (
                    [*previous, value] if isinstance(previous, list) else [previous, value]
                )
            else:
                values[name] = value
        return cls(values, text_keys=values.keys())

    @classmethod
    def from_body(cls, body: Any, *, query: Params | None = None) -> Params:
        """A JSON body, which must be an object; `query` adds the query string's parameters."""
        if not isinstance(body, dict):
            raise InvalidParameter("body", f"expected a JSON object, found {describe(body)}")
        if query is None or not query._values:
            return cls(body)
        both = sorted(set(body) & set(query._values))
        if both:
            raise InvalidParameter(both[0], "given both in the query string and in the body")
        # Each value keeps its origin: the query's are text, the body's are JSON.
        return cls({**query._values, **body}, text_keys=query._text_keys)

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _is_text(self, key: str) -> bool:
        return key in self._text_keys

    def raw(self, key: str) -> Any:
        """The value as given, or `MISSING`."""
        self._asked.append(key)
        return self._values.get(key, MISSING)

    def _single(self, key: str) -> Any:
        value = self.raw(key)
        if self._is_text(key) and isinstance(value, list):
            raise InvalidParameter(self.name(key), "given more than once")
        return value

    def text(self, key: str, *, max_length: int = 1024) -> str | None:
        value = self._single(key)
        if value is MISSING or value is None:
            return None
        return self.check_text(value, self.name(key), max_length)

    @staticmethod
    def check_text(value: Any, parameter: str, max_length: int) -> str:
        if not isinstance(value, str):
            raise InvalidParameter(parameter, f"expected a string, found {describe(value)}")
        if len(value) > max_length:
            raise InvalidParameter(parameter, f"longer than {max_length} characters")
        return value

    def texts(self, key: str, *, max_count: int = 1024, max_length: int = 8191) -> list[str]:
        """A string or a list of strings (a repeated query parameter)."""
        value = self.raw(key)
        if value is MISSING or value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        if not value:
            raise InvalidParameter(self.name(key), "expected at least one value")
        if len(value) > max_count:
            raise InvalidParameter(self.name(key), f"more than {max_count} values")
        return [
            self.check_text(item, f"{self.name(key)}[{i}]", max_length)
            for i, item in enumerate(value)
        ]

    def integer(self, key: str, *, default: int | None, minimum: int, maximum: int) -> int:
        """An integer within [minimum, maximum]; the default when missing (or blank text)."""
        value = self._single(key)
        if self._is_text(key) and isinstance(value, str):
            value = value.strip()
            if not value:
                value = MISSING
            elif value.lstrip("-").isascii() and value.lstrip("-").isdigit() and len(value) < 30:
                value = int(value)
        if value is MISSING or value is None:
            if default is None:
                raise InvalidParameter(self.name(key), "is required")
            return default
        if type(value) is not int:
            raise InvalidParameter(self.name(key), f"expected an integer, found {describe(value)}")
        if not minimum <= value <= maximum:
            raise InvalidParameter(
                self.name(key),
                f"{value} is outside the allowed range {minimum} to {maximum}",
                minimum=minimum,
                maximum=maximum,
            )
        return value

    def choice(self, key: str, choices: Sequence[str], *, default: str) -> str:
        value = self._single(key)
        if value is MISSING or value is None:
            return default
        if value not in choices:
            raise InvalidParameter(
                self.name(key),
                f"expected one of {', '.join(choices)}, found {describe(value)}",
                allowed=list(choices),
            )
        return str(value)

    def instant(self, key: str) -> int | None:
        """An ISO-8601 date-time as epoch milliseconds, or None."""
        value = self._single(key)
        if value is MISSING or value is None:
            return None
        return parse_instant(value, self.name(key))

    def json(self, key: str) -> Any:
        """A JSON value: parsed from text in a query string, as is in a body."""
        value = self._single(key)
        if value is MISSING or not self._is_text(key):
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise InvalidParameter(self.name(key), f"not valid JSON: {error.msg}") from None

    def finish(self) -> None:
        """Every parameter must have been asked for; an unknown one is a 400."""
        unknown = sorted(set(self._values) - set(self._asked))
        if unknown:
            known = ", ".join(dict.fromkeys(self._asked))
            raise InvalidParameter(self.name(unknown[0]), f"unknown parameter; known here: {known}")
