"""EventJson: the pieces of an agent event's JSON that are the same for many events.

The writers that put agents' drafts straight into JSON (`requestevent.py` and `loghandler.py`,
in Python or in the C extension) write each event from these pieces and its own values: the
head (type, system, agent id: the fields `new_event` sets, in its order), the timestamp of a
millisecond, and the tail that closes the event with the sender's marker. Each is worked out
once and reused for as long as it does not change.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from .builder import instant_from_ms, new_event

__all__ = ["head_fields", "head_json", "heads", "stamp_json", "tail_json"]


def head_json(event_type: str, agent_id: str, system: str | None) -> bytes:
    """From the end of the id to the opening quote of the timestamp."""
    kind, own_system, agent = head_fields(event_type, agent_id)
    return b"".join(
        [
            b'","type":',
            orjson.dumps(kind),
            b',"system":',
            orjson.dumps(own_system if system is None else system),
            b',"agent-id":',
            orjson.dumps(agent),
            b',"timestamp":"',
        ]
    )


def heads(system: str | None) -> Callable[[str, str], bytes]:
    """`head_json` for this `system`, remembered per type and agent id (for one group)."""
    made: dict[tuple[str, str], bytes] = {}

    def head(event_type: str, agent_id: str) -> bytes:
        found = made.get((event_type, agent_id))
        if found is None:
            found = made[event_type, agent_id] = head_json(event_type, agent_id, system)
        return found

    return head


def stamp_json(milliseconds: int) -> bytes:
    """The timestamp of this millisecond, without its quotes."""
    return instant_from_ms(milliseconds).encode()


def tail_json(marker: str | None) -> bytes:
    """What closes an event: its `marker` (stamped by the sender) where there is one."""
    return b"}" if marker is None else b',"marker":' + orjson.dumps(marker) + b"}"


def head_fields(event_type: str, agent_id: str) -> tuple[str, str, str]:
    """The type, system and agent id `new_event` gives, whose field order the events keep."""
    event = new_event(event_type, agent_id, id="-", timestamp="-")
    if list(event) != ["id", "type", "system", "agent-id", "timestamp"]:  # pragma: no cover
        raise AssertionError(f"new_event's fields changed: {list(event)}")
    return event["type"], event["system"], event["agent-id"]
