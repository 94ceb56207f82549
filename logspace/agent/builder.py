"""Building events: typed properties, generated ids and UTC timestamps, checked by HQ's rules.

An event is a plain dict in the wire format of `docs/api.md`. `encode_event` turns one into the
exact bytes the agent queues and sends, after running HQ's own decoder (`logspace.decode`) on
them, so an event that passes here is never rejected by an HQ of the same version.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Self

import orjson

from .. import fastpath
from ..decoder import decode
from ..errors import EventError, InvalidBatch, InvalidEvents, InvalidJson
from ..events import DEFAULT_LIMITS, FAMILIES, BadValue, check_property_name

__all__ = [
    "Event",
    "EventBuilder",
    "InvalidEvent",
    "Kind",
    "all_plain",
    "default_system",
    "encode_event",
    "encode_events",
    "format_instant",
    "instant_from_ms",
    "instant_from_timestamp",
    "new_event",
    "now_instant",
    "random_id",
    "random_ids",
]

Event = dict[str, Any]
Kind = Literal["boolean", "date", "double", "float", "integer", "long", "string"]


class InvalidEvent(ValueError):
    """An event HQ would refuse; `errors` lists every problem with a JSON path from `$`."""

    def __init__(self, errors: Sequence[EventError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"invalid event: {first.message} at {first.path}{more}")

    @classmethod
    def at(cls, path: str, message: str, event_id: str | None = None) -> InvalidEvent:
        """One problem, at `path`."""
        return cls([EventError(0, event_id, path, message)])


@functools.cache
def default_system() -> str:
    """The host name, as the original agents used for `system`."""
    return socket.gethostname() or "unknown"


def format_instant(instant: datetime) -> str:
    """An aware datetime -> `2015-05-18T14:07:00.000Z`, the form HQ stores."""
    if instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone; use an aware datetime such as UTC")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The formatted second of the last instant formatted: agents stamp many events per second.
_second: tuple[int | None, str] = (None, "")  # None: no second yet (-1 is one)


def instant_from_ms(milliseconds: int) -> str:
    """Milliseconds since the epoch -> `2015-05-18T14:07:00.123Z`, as `format_instant`."""
    global _second
    second, rest = divmod(milliseconds, 1000)
    cached = _second
    if cached[0] != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _second = (second, text)
    return f"{cached[1]}.{rest:03d}Z"


def instant_from_timestamp(seconds: float) -> str:
    """A POSIX timestamp (e.g. a log record's `created`) as `format_instant` writes it."""
    whole = int(seconds)
    # Rounded to microseconds from the exact fraction, as datetime.fromtimestamp does.
    micro = round((seconds - whole) * 1_000_000)
    return instant_from_ms(whole * 1000 + micro // 1000)


def now_instant() -> str:
    """Now, in UTC with milliseconds."""
    return instant_from_ms(time.time_ns() // 1_000_000)


# The variant digit of a version 4 UUID (binary 10xx) for each random hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def random_id() -> str:
    """A random (version 4) UUID as text, as `str(uuid.uuid4())` but a third of its cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# Bytes 6 and 8 of a version 4 UUID: the version (4) and the variant (binary 10) in their bits.
_VERSION_4 = bytes((byte & 0x0F) | 0x40 for byte in range(256))
_VARIANT_10 = bytes((byte & 0x3F) | 0x80 for byte in range(256))


def random_ids(count: int) -> list[str]:
    """`count` ids as `random_id` makes them, in a few operations of C for the lot."""
    if not count:
        return []
    random = bytearray(os.urandom(16 * count))
    random[6::16] = random[6::16].translate(_VERSION_4)
    random[8::16] = random[8::16].translate(_VARIANT_10)
    # Groups of four digits, "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh-" per id: a UUID keeps
    # the second to fifth dash and ends at the eighth.
    text = bytearray(random.hex("-", 2).encode() + b"-")
    for dash in (4, 29, 34):
        text[dash::40] = b"x" * count
    text[39::40] = b" " * count
    return text.translate(None, b"x").decode().split()


def new_event(
    type: str,
    agent_id: str | None = None,
    *,
    system: str | None = None,
    id: str | None = None,
    timestamp: str | None = None,
) -> Event:
    """The required fields of an event, with the defaults `EventBuilder` documents."""
    return {
        "id": id or random_id(),
        "type": type,
        "system": system or default_system(),
        "agent-id": agent_id or type,
        "timestamp": timestamp or now_instant(),
    }


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The event as compact JSON, or `InvalidEvent` if HQ's decoder would refuse it."""
    [encoded] = encode_events([event])
    if isinstance(encoded, InvalidEvent):
        raise encoded
    return encoded


def encode_events(events: Sequence[Mapping[str, Any]]) -> list[bytes | InvalidEvent]:
    """Each event as `encode_event` encodes it, or the `InvalidEvent` it raises; checking many
    at once costs far less per event than one at a time."""
    dumps = orjson.dumps
    try:
        # The common group: every event encodes, and the C path vouches for all of them.
        bodies = [dumps(event) for event in events]
    except TypeError:
        return _encode_each(events)
    if all_plain(bodies):
        return list[bytes | InvalidEvent](bodies)
    return _encode_each(events)


def all_plain(bodies: list[bytes]) -> bool:
    """Whether the C path vouches for every one of these encoded events as HQ takes it as
    is (False without the extension: the thorough decoder is then the judge)."""
    newest = datetime.now(UTC) + DEFAULT_LIMITS.max_future
    verdicts = fastpath.plain_each(bodies, DEFAULT_LIMITS, newest)
    return verdicts is not None and False not in verdicts


def _encode_each(events: Sequence[Mapping[str, Any]]) -> list[bytes | InvalidEvent]:
    """`encode_events` one event at a time, for a group the common case does not take whole."""
    encoded: list[bytes | InvalidEvent] = []
    for event in events:
        try:
            encoded.append(orjson.dumps(event))
        except TypeError as error:
            problem = f"cannot be encoded as JSON: {error}"
            encoded.append(InvalidEvent.at("$", problem, _id_of(event)))
    # The C path vouches for the common event in a microsecond; what it does not take as is,
    # the thorough decoder accepts or explains (the same rules decide either way).
    bodies = [data for data in encoded if isinstance(data, bytes)]
    newest = datetime.now(UTC) + DEFAULT_LIMITS.max_future
    plain = iter(fastpath.plain_each(bodies, DEFAULT_LIMITS, newest) or [False] * len(bodies))
    for index, data in enumerate(encoded):
        if isinstance(data, bytes) and not next(plain):
            encoded[index] = _thorough(data, _id_of(events[index]))
    return encoded


def _id_of(event: Mapping[str, Any]) -> str | None:
    event_id = event.get("id")
    return event_id if isinstance(event_id, str) else None


def _thorough(data: bytes, event_id: str | None) -> bytes | InvalidEvent:
    try:
        decode(b"[" + data + b"]")
    except InvalidEvents as invalid:
        return InvalidEvent(
            [
                EventError(0, e.id, "$" + e.path.removeprefix("$[0]"), e.message)
                for e in invalid.errors
            ]
        )
    except (InvalidJson, InvalidBatch) as error:  # pragma: no cover - orjson writes valid JSON
        return InvalidEvent.at("$", error.message, event_id)
    return data


def _infer(value: Any) -> Kind:
    # bool before int: True is an int in Python.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, str) or (
        isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value)
    ):
        return "string"
    raise BadValue(
        f"cannot infer the property type of {type(value).__name__} {value!r}; "
        "name it: boolean, date, double, float, integer, long or string"
    )


class EventBuilder:
    """Builds one event; `build()` checks it with HQ's rules.

        EventBuilder("os/cpu").integer("processor_count", 4).double("system_cpu_load", 0.4).build()

    `agent_id` defaults to the type, `system` to the host name, the id to a random UUID and
    the timestamp to now (UTC, milliseconds). Setting a property again replaces its value.
    Python types map to families where that is unambiguous: bool -> boolean, int -> long,
    float -> double, str or a list of str -> string, aware datetime -> date.
    """

    def __init__(
        self,
        type: str,
        agent_id: str | None = None,
        *,
        system: str | None = None,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        pid: str | None = None,
        gid: str | None = None,
        marker: str | None = None,
    ) -> None:
        if isinstance(timestamp, datetime):
            timestamp = format_instant(timestamp)
        self._event = new_event(type, agent_id, system=system, id=id, timestamp=timestamp)
        for name, value in (("pid", pid), ("gid", gid), ("marker", marker)):
            if value is not None:
                self._event[name] = value

    def property(self, name: str, value: Any, kind: Kind | None = None) -> Self:
        """Set a property; without `kind` the family is inferred from the Python type."""
        try:
            check_property_name(name)
            kind = kind or _infer(value)
            family = f"{kind}-properties"
            if family not in FAMILIES:
                raise BadValue(f"unknown property kind {kind!r}")
            check, multi = FAMILIES[family]
            if isinstance(value, datetime):
                value = format_instant(value)
            if multi and isinstance(value, list | tuple):
                if not value:
                    raise BadValue("expected at least one value, found none")
                value = [check(v) for v in value]
            else:
                value = check(value)
        except (BadValue, ValueError) as bad:
            path = f"$.{kind}-properties.{name}" if kind else f"$.{name}"
            raise InvalidEvent.at(path, str(bad), self._event["id"]) from None
        self._event.setdefault(family, {})[name] = value
        return self

    def properties(self, values: Mapping[str, Any], kind: Kind | None = None) -> Self:
        for name, value in values.items():
            self.property(name, value, kind)
        return self

    def boolean(self, name: str, value: bool) -> Self:
        return self.property(name, value, "boolean")

    def date(self, name: str, value: datetime | str) -> Self:
        return self.property(name, value, "date")

    def double(self, name: str, value: float) -> Self:
        return self.property(name, value, "double")

    def float32(self, name: str, value: float) -> Self:
        """A `float-properties` value (32-bit in Elasticsearch, hence the name)."""
        return self.property(name, value, "float")

    def integer(self, name: str, value: int) -> Self:
        return self.property(name, value, "integer")

    def long(self, name: str, value: int) -> Self:
        return self.property(name, value, "long")

    def string(self, name: str, value: str | Sequence[str]) -> Self:
        return self.property(name, list(value) if not isinstance(value, str) else value, "string")

    def build(self) -> Event:
        """The event, a new dict each time; `InvalidEvent` if HQ would refuse it."""
        event = {k: dict(v) if isinstance(v, dict) else v for k, v in self._event.items()}
        encode_event(event)
        return event
