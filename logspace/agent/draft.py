"""Draft: an event handed over as the values it is built from, built later with many others.

The request and log agents run inside every request and every logging call of the application.
So they do not build their event there: they hand the sender a draft, the values the event is
made of and the function that makes such events, `build(values_list, ids)`, many at a time. The
sender's buffer keeps the draft in place of the event; its thread builds, encodes and checks the
drafts of a group together, just before committing them (`encode_drafts`), with one call of the
C rules for the lot. The bytes are those `encode_event` gives for the event `build` returns,
which is what `EventBuilder` builds from the same values: only the time and thread of the work
change.

A draft is checked as `send` checks an event, but later, in the sender's thread, so the agent's
call cannot raise `InvalidEvent` for it: an event the rules refuse (a log record with a clock
before 2000, say) is dropped there, counted in `dropped` (it was counted in `enqueued` when it
was handed over), logged and passed to `on_drop` with reason `invalid`, the rules' message and
the event's JSON. A sink without drafts (`MemorySink`, your own) gets the event built at once.

A draft counts with an estimate of its size (its texts plus a margin for the rest) against the
buffer's bound until it is encoded. Once the buffer is half full of work the thread has not done
(it shares the GIL with a busy application), callers build their own events again, as `send`
does (`Buffer.put_draft`): drafts make bursts cheap, never a reason to drop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, cast

import orjson

from .builder import Event, InvalidEvent, all_plain, encode_events, random_id, random_ids
from .shipper import Dropped
from .sink import Sink

__all__ = ["DRAFT_MARGIN", "Build", "Draft", "SendDraft", "Stamp", "drafting", "encode_drafts"]

# What the fixed part of an agent's event (id, type, system, timestamp, property names and
# numbers) takes beyond its texts, about: the estimate of a draft's size.
DRAFT_MARGIN = 400

# The events of these values, with these ids, in their order.
Build = Callable[[Sequence[Any], Sequence[str]], list[Event]]
# build, values, estimated size
Draft = tuple[Build, Any, int]
SendDraft = Callable[[Build, Any, int], None]

_build_of = itemgetter(0)
_values_of = itemgetter(1)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a sender sets on each event it builds: its configured `system` (where set) in
    place of the event's, and its `marker` where the event has none (appended last)."""

    system: str | None
    marker: str | None

    def __call__(self, event: Event) -> Event:
        """`event` stamped, in place (nobody else holds it)."""
        if self.system is not None:
            event["system"] = self.system
        if self.marker is not None:
            event.setdefault("marker", self.marker)
        return event


class Encoded(Protocol):
    """What a `build` may offer besides its events: straight their JSON as stamped and
    encoded by `encode_event`, for drafts that the rules then all accept (see `RequestEvents`)."""

    def __call__(
        self, drafts: Sequence[Any], ids: Sequence[str], system: str | None, marker: str | None
    ) -> list[bytes]: ...


def drafting(sink: Sink) -> SendDraft:
    """How an agent hands `sink` its events: as drafts where the sink takes them (senders),
    else built at once and sent."""
    send_draft: SendDraft | None = getattr(sink, "send_draft", None)
    if send_draft is not None:
        return send_draft

    def send_built(build: Build, values: Any, size: int) -> None:
        [event] = build([values], [random_id()])
        sink.send(event)

    return send_built


def encode_drafts(drafts: Sequence[Draft], stamp: Stamp) -> list[bytes | Dropped]:
    """Each draft's event, built with a new id, stamped, and encoded as `encode_event` does;
    or, where the rules refuse it, the drop (reason `invalid`) to count and report."""
    # One draft is what a caller builds itself (see Buffer.put_draft): random_id is cheaper.
    ids = [random_id()] if len(drafts) == 1 else random_ids(len(drafts))
    accepted = _all_accepted(drafts, ids, stamp)
    if accepted is not None:
        return cast(list[bytes | Dropped], accepted)
    kinds: dict[Build, list[int]] = {}
    for index, (build, _, _) in enumerate(drafts):
        kinds.setdefault(build, []).append(index)
    made: dict[int, Mapping[str, Any] | InvalidEvent] = {}
    for build, indices in kinds.items():
        built = _built(build, [drafts[i][1] for i in indices], [ids[i] for i in indices])
        for index, event in zip(indices, built, strict=True):
            made[index] = event if isinstance(event, InvalidEvent) else stamp(event)
    events = [made[index] for index in range(len(drafts))]
    encoded = iter(encode_events([e for e in events if not isinstance(e, InvalidEvent)]))
    results: list[bytes | Dropped] = []
    for made_event in events:
        result = made_event if isinstance(made_event, InvalidEvent) else next(encoded)
        if isinstance(result, InvalidEvent):
            body = b"" if isinstance(made_event, InvalidEvent) else _json(made_event)
            results.append(Dropped(body, "invalid", str(result)))
        else:
            results.append(result)
    return results


def _all_accepted(drafts: Sequence[Draft], ids: list[str], stamp: Stamp) -> list[bytes] | None:
    """The common group, drafts of one agent that are all built and accepted, encoded in a
    few calls for the lot; None for any other group (`encode_drafts` then goes one by one)."""
    if not drafts:
        return []
    build = drafts[0][0]
    # Loops in C: this runs for every event.
    if len(set(map(_build_of, drafts))) != 1:
        return None
    values = list(map(_values_of, drafts))
    encoded_by: Encoded | None = getattr(build, "encoded", None)
    if encoded_by is not None:
        # No dict per event: the JSON straight, then the C rules judge the lot.
        try:
            bodies = encoded_by(values, ids, stamp.system, stamp.marker)
        except Exception:
            return None  # the one-by-one path reports the draft that cannot be built
        return bodies if all_plain(bodies) else None
    built = _built(build, values, ids)
    events: list[Mapping[str, Any]] = []
    for event in built:
        if isinstance(event, InvalidEvent):
            return None
        events.append(stamp(event))
    encoded = encode_events(events)
    bodies = [body for body in encoded if not isinstance(body, InvalidEvent)]
    return bodies if len(bodies) == len(encoded) else None


def _json(event: Mapping[str, Any]) -> bytes:
    """The refused event as JSON for `on_drop`, where it can be written at all."""
    try:
        return orjson.dumps(event, default=repr)
    except TypeError:  # pragma: no cover - `default` takes any value orjson cannot
        return b""


def _built(build: Build, values: list[Any], ids: list[str]) -> list[Event | InvalidEvent]:
    """The events of drafts of one kind; one that cannot be built (a bug in its agent) is
    reported like an invalid event, and the others are built nonetheless."""
    try:
        return list(build(values, ids))
    except Exception as error:
        if len(values) == 1:
            return [InvalidEvent.at("$", f"could not be built: {error!r}", ids[0])]
        return [
            event for v, i in zip(values, ids, strict=True) for event in _built(build, [v], [i])
        ]
