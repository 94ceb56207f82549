"""Request body -> validated, normalised events; the only caller of `orjson.loads` on input.

Pure: `decode(body)` returns the events as plain dicts, normalised in place (UTC
timestamps, single values unwrapped from the original agents' arrays, nulls dropped),
or raises `InvalidJson`, `InvalidBatch` or `InvalidEvents` listing every problem.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import orjson

from .errors import EventError, InvalidBatch, InvalidEvents, InvalidJson
from .events import (
    FAMILIES,
    MAX_ID_BYTES,
    MAX_TEXT_FIELD_LENGTH,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    BadValue,
    check_property_name,
    describe,
    normalise_instant,
)

__all__ = ["decode"]

_KNOWN_FIELDS = (*REQUIRED_FIELDS, *OPTIONAL_FIELDS, *FAMILIES)
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_\-]+")

Problem = Callable[[str, str], None]


def decode(body: bytes) -> list[dict[str, Any]]:
    """Parse and validate a batch; any invalid event rejects the whole batch."""
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _invalid_json(body, error) from None
    if not isinstance(batch, list):
        raise InvalidBatch(
            f"The request body must be a JSON array of events, found {describe(batch)}.",
            {"found": _json_kind(batch)},
        )
    errors: list[EventError] = []
    for index, event in enumerate(batch):
        _check_event(index, event, errors)
    if errors:
        raise InvalidEvents(errors, len(batch))
    return batch


def _invalid_json(body: bytes, error: orjson.JSONDecodeError) -> InvalidJson:
    if not body.strip():
        return InvalidJson(
            "The request body is empty; expected a JSON array of events.",
            {"line": 1, "column": 1},
        )
    reason = error.msg
    rest = body[error.pos : error.pos + 9].lstrip(b"-")
    if rest.startswith((b"NaN", b"Infinity")):
        reason = "NaN and Infinity are not JSON numbers; leave the property out instead"
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


def _member(path: str, name: str) -> str:
    if _SIMPLE_NAME.fullmatch(name):
        return f"{path}.{name}"
    return f"{path}[{orjson.dumps(name).decode()}]"


def _check_event(index: int, event: Any, errors: list[EventError]) -> None:
    path = f"$[{index}]"
    if not isinstance(event, dict):
        errors.append(
            EventError(index, None, path, f"expected an event object, found {describe(event)}")
        )
        return
    event_id = event.get("id")
    if not isinstance(event_id, str):
        event_id = None

    def problem(at: str, message: str) -> None:
        errors.append(EventError(index, event_id, at, message))

    for name in REQUIRED_FIELDS:
        if name not in event:
            problem(_member(path, name), f"missing required field '{name}'")

    dropped: list[str] = []
    for key, value in event.items():
        at = _member(path, key)
        if key in FAMILIES:
            if value is None:
                dropped.append(key)
            else:
                _check_family(key, value, at, problem)
        elif key in REQUIRED_FIELDS:
            if key == "timestamp":
                try:
                    event[key] = normalise_instant(value)
                except BadValue as bad:
                    problem(at, str(bad))
            else:
                _check_text(key, value, at, problem)
        elif key in OPTIONAL_FIELDS:
            if value is None:
                dropped.append(key)
            else:
                _check_text(key, value, at, problem)
        else:
            problem(at, _unknown_field_message(key))
    for key in dropped:
        del event[key]


def _check_text(name: str, value: Any, at: str, problem: Problem) -> None:
    if type(value) is not str or not value:
        problem(at, f"expected a non-empty string, found {describe(value)}")
    elif len(value) > MAX_TEXT_FIELD_LENGTH:
        problem(
            at, f"'{name}' must be at most {MAX_TEXT_FIELD_LENGTH} characters, found {len(value)}"
        )
    elif name == "id" and len(value.encode()) > MAX_ID_BYTES:
        problem(at, f"'id' must be at most {MAX_ID_BYTES} bytes in UTF-8")


def _unknown_field_message(key: str) -> str:
    if key == "space":
        return "unknown field 'space': the space is chosen by the space-token, not by the event"
    message = f"unknown field '{key}'"
    close = difflib.get_close_matches(key, _KNOWN_FIELDS, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def _check_family(family: str, values: Any, at: str, problem: Problem) -> None:
    if not isinstance(values, dict):
        problem(at, f"expected an object of properties, found {describe(values)}")
        return
    check, multi = FAMILIES[family]
    for name, value in values.items():
        prop_at = _member(at, name)
        try:
            check_property_name(name)
            values[name] = _check_property(check, multi, value)
        except BadValue as bad:
            problem(prop_at, str(bad))


def _check_property(check: Callable[[Any], Any], multi: bool, value: Any) -> Any:
    if type(value) is not list:
        return check(value)
    # The original Java agents send every property value as an array.
    if not value:
        raise BadValue("expected a value, found an empty array")
    if len(value) == 1:
        return check(value[0])
    if not multi:
        raise BadValue(
            f"expected one value, found an array of {len(value)}; "
            "only string properties may have several values"
        )
    return [check(item) for item in value]
