"""The thorough decoder: request body -> validated, normalised events, every problem named.

Also the one reader of JSON request bodies (`load_json`): the only caller of `orjson.loads`
on input. Shared by HQ (`ingest.decode`, the read and control endpoints) and the agent
library, which checks the events it builds by the same rules.

Pure: `decode(body, limits, now=...)` returns the events as plain dicts, normalised in place
(UTC timestamps, single values unwrapped from the original agents' arrays, nulls dropped), or
raises `InvalidJson`, `InvalidBatch`, `TooManyEvents` or `InvalidEvents` listing every problem.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from logspace.errors import EventError, InvalidBatch, InvalidEvents, InvalidJson, TooManyEvents
from logspace.events import (
    DEFAULT_LIMITS,
    EVENT_FAMILIES,
    FAMILIES,
    MAX_ID_BYTES,
    MAX_TEXT_FIELD_BYTES,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    BadValue,
    Limits,
    check_property_name,
    describe,
    format_instant,
    member_path,
    parse_instant,
)

__all__ = ["decode", "load_json"]

_KNOWN_FIELDS = (*REQUIRED_FIELDS, *OPTIONAL_FIELDS, *FAMILIES)
_STRING_FAMILY = "string-properties"

Problem = Callable[[str, str], None]


def decode(
    body: bytes,
    limits: Limits = DEFAULT_LIMITS,
    *,
    now: datetime | None = None,
    vouched: Sequence[bool] | None = None,
) -> list[dict[str, Any]]:
    """Parse and validate a batch; any invalid event rejects the whole batch.

    `now` (default: the current time) bounds how far in the future timestamps may be.
    `vouched` may say, for each event of the body, whether a faster checker found it to break
    no rule and need no normalising (`fastpath.plain_events`, with the same `now`):
    those events are not checked again here. Without it, or if its length is not the batch's,
    every event is checked.
    """
    batch = load_json(body, non_finite=True)
    if not isinstance(batch, list):
        raise InvalidBatch(
            f"The request body must be a JSON array of events, found {describe(batch)}.",
            {"found": _json_kind(batch)},
        )
    if len(batch) > limits.max_events:
        raise TooManyEvents(
            f"The batch has {len(batch)} events; at most {limits.max_events} are accepted per "
            "request. Send them in smaller batches.",
            {"event-count": len(batch), "max-events": limits.max_events},
        )
    newest = (now or datetime.now(UTC)) + limits.max_future
    checker = _Checker(limits, newest)
    plain = vouched if vouched is not None and len(vouched) == len(batch) else None
    if plain is None:
        plain = [False] * len(batch)
    for index, event in enumerate(batch):
        if not plain[index]:
            checker.check_event(index, event)
    if checker.errors:
        raise InvalidEvents(checker.errors, len(batch))
    return batch


def load_json(body: bytes, *, non_finite: bool = False) -> Any:
    """Any request body as JSON; `InvalidJson` saying where and why it is not.

    With `non_finite`, the bare tokens `NaN`, `Infinity` and `-Infinity` are read as floats,
    as the original Logspace read them (its Java agents write them for non-finite doubles)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if not non_finite or (b"NaN" not in body and b"Infinity" not in body):
            raise _invalid_json(body, error) from None
    return _load_with_non_finite(body)


# A JSON string (skipped whole, so text inside strings is never touched), or a bare token.
_NON_FINITE_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|-?Infinity|NaN')
_STAND_INS = {b"NaN": b"0.0", b"Infinity": b"0.000000", b"-Infinity": b"-0.000000"}
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _load_with_non_finite(body: bytes) -> Any:
    """orjson checks the body with each bare token replaced by a number of the same length, so
    every other problem is found, at the same place, as without tokens; then the standard
    library (which knows the tokens, but not orjson's limits) reads it."""
    stand_in = _NON_FINITE_TOKEN.sub(lambda m: _STAND_INS.get(m[0], m[0]), body)
    try:
        orjson.loads(stand_in)
    except orjson.JSONDecodeError as error:
        raise _invalid_json(body, error) from None
    try:
        return json.loads(body, parse_constant=_CONSTANTS.__getitem__)
    except json.JSONDecodeError as error:  # a token glued to another, such as `1NaN`
        raise InvalidJson(
            f"The request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}.",
            {"line": error.lineno, "column": error.colno},
        ) from None
    except RecursionError:  # orjson allows 1024 levels, the standard library a few less
        raise InvalidJson(
            "The request body is not valid JSON: it nests too deeply.", {"line": 1, "column": 1}
        ) from None


def _invalid_json(body: bytes, error: orjson.JSONDecodeError) -> InvalidJson:
    if not body.strip():
        return InvalidJson(
            "The request body is empty; expected a JSON array of events.",
            {"line": 1, "column": 1},
        )
    reason = error.msg
    rest = body[error.pos : error.pos + 9].lstrip(b"-+")
    if rest.startswith((b"NaN", b"Infinity", b"INF")):
        reason = (
            "NaN and Infinity are not JSON numbers; only the events of PUT /events may hold "
            "them, written NaN, Infinity or -Infinity"
        )
    return InvalidJson(
        f"The request body is not valid JSON: {reason} at line {error.lineno} "
        f"column {error.colno}.",
        {"line": error.lineno, "column": error.colno},
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


class _Checker:
    """Checks events one by one, collecting every problem."""

    def __init__(self, limits: Limits, newest: datetime) -> None:
        self.limits = limits
        self.newest = newest
        self.errors: list[EventError] = []

    def check_event(self, index: int, event: Any) -> None:
        path = f"$[{index}]"
        if not isinstance(event, dict):
            self.errors.append(
                EventError(index, None, path, f"expected an event object, found {describe(event)}")
            )
            return
        event_id = event.get("id")
        if not isinstance(event_id, str):
            event_id = None

        def problem(at: str, message: str) -> None:
            self.errors.append(EventError(index, event_id, at, message))

        for name in REQUIRED_FIELDS:
            if name not in event:
                problem(member_path(path, name), f"missing required field '{name}'")

        dropped: list[str] = []
        properties = 0
        for key, value in event.items():
            at = member_path(path, key)
            if key in FAMILIES:
                if value is None:
                    dropped.append(key)
                else:
                    properties += self._check_family(key, value, at, problem)
            elif key == "timestamp":
                self._check_timestamp(event, value, at, problem)
            elif key in REQUIRED_FIELDS:
                _check_text(key, value, at, problem)
            elif key in OPTIONAL_FIELDS:
                if value is None or value == "":
                    dropped.append(key)
                else:
                    _check_text(key, value, at, problem)
            else:
                problem(at, _unknown_field_message(key))
        for key in dropped:
            del event[key]
        if properties > self.limits.max_properties:
            problem(
                path,
                f"an event may have at most {self.limits.max_properties} properties, "
                f"found {properties}",
            )

    def _check_timestamp(
        self, event: dict[str, Any], value: Any, at: str, problem: Problem
    ) -> None:
        try:
            instant = parse_instant(value)
        except BadValue as bad:
            problem(at, str(bad))
            return
        # Out-of-window timestamps would create stray indices for years nobody keeps.
        if instant < self.limits.oldest_timestamp:
            problem(
                at,
                f"timestamp {format_instant(instant)} is older than the oldest accepted, "
                f"{format_instant(self.limits.oldest_timestamp)}",
            )
        elif instant > self.newest:
            problem(
                at,
                f"timestamp {format_instant(instant)} is in the future, after "
                f"{format_instant(self.newest)}; check the clock of the agent",
            )
        event["timestamp"] = format_instant(instant)

    def _check_family(self, family: str, values: Any, at: str, problem: Problem) -> int:
        """Check one property family; returns how many properties it holds."""
        if not isinstance(values, dict):
            problem(at, f"expected an object of properties, found {describe(values)}")
            return 0
        check, multi = EVENT_FAMILIES[family]
        max_name = self.limits.max_property_name_length
        max_string = self.limits.max_string_length if family == _STRING_FAMILY else None
        for name, value in list(values.items()):
            try:
                check_property_name(name, max_name)
                if value == []:
                    # No value: the original Logspace stored no property for it.
                    del values[name]
                    continue
                values[name] = _check_property(check, multi, value)
                if max_string is not None:
                    _check_string_length(values[name], max_string)
            except BadValue as bad:
                problem(member_path(at, name), str(bad))
        return len(values)


def _check_text(name: str, value: Any, at: str, problem: Problem) -> None:
    if type(value) is not str or not value:
        problem(at, f"expected a non-empty string, found {describe(value)}")
    elif name == "id":
        if len(value) * 4 > MAX_ID_BYTES and len(value.encode()) > MAX_ID_BYTES:
            problem(at, f"'id' must be at most {MAX_ID_BYTES} bytes in UTF-8")
    elif len(value) * 4 > MAX_TEXT_FIELD_BYTES and len(value.encode()) > MAX_TEXT_FIELD_BYTES:
        problem(
            at,
            f"'{name}' must be at most {MAX_TEXT_FIELD_BYTES} bytes in UTF-8, "
            f"found {len(value.encode())}",
        )


def _unknown_field_message(key: str) -> str:
    if key == "space":
        return "unknown field 'space': the space is chosen by the space-token, not by the event"
    message = f"unknown field '{key}'"
    close = difflib.get_close_matches(key, _KNOWN_FIELDS, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def _check_string_length(value: str | list[str], max_length: int) -> None:
    for item in value if isinstance(value, list) else (value,):
        if len(item) > max_length:
            raise BadValue(
                f"string values must be at most {max_length} characters, found {len(item)}"
            )


def _check_property(check: Callable[[Any], Any], multi: bool, value: Any) -> Any:
    if type(value) is not list:
        return check(value)
    # The original Java agents send every property value as an array.
    if len(value) == 1:
        return check(value[0])
    if not multi:
        raise BadValue(
            f"expected one value, found an array of {len(value)}; "
            "only string properties may have several values"
        )
    return [check(item) for item in value]
