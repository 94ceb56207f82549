"""The original Java agents' readers, as strict as they were, for tests: what HQ serves them
must get through. Written from the behaviour described in the original's design notes
(/work/shared/design/original-logspace.md, §7.6), not from its code."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["OriginalParserError", "read_order"]

_TRIGGER_TYPES = ("Application", "Scheduler", "Off")


class OriginalParserError(ValueError):
    """Where the original parser would have thrown."""


def _object(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return pairs  # keep members in their order: the original reads them as a stream


def read_order(body: bytes) -> dict[str, Any]:
    """An order as the original controller's parser reads it: `agent-orders` (optional) first,
    then `commit-max-seconds`, which must follow (the parser expects a field there), and
    nothing else; each agent order `id`, then `trigger-type` (any case; unknown ones read as
    None), then optionally `trigger-parameter`, all texts."""
    members = json.loads(body, object_pairs_hook=_object)
    if not isinstance(members, list) or not members:
        raise OriginalParserError("expected an object with a field")
    order: dict[str, Any] = {"agent-orders": []}
    if members[0][0] == "agent-orders":
        name, entries = members.pop(0)
        if not isinstance(entries, list):
            raise OriginalParserError("expected an array of agent orders")
        order["agent-orders"] = [_agent_order(entry) for entry in entries]
    if not members:
        raise OriginalParserError("expected token of type FIELD_NAME, but found END_OBJECT")
    name, seconds = members.pop(0)
    if name != "commit-max-seconds" or members:
        raise OriginalParserError(f"expected END_OBJECT, found field {name!r}")
    # Jackson's nextIntValue(0): anything but an integer token reads as 0.
    order["commit-max-seconds"] = seconds if type(seconds) is int else 0
    return order


def _agent_order(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, list) or len(entry) < 2 or len(entry) > 3:
        raise OriginalParserError(f"expected an agent order, found {entry!r}")
    names = [name for name, _ in entry]
    if names[:2] != ["id", "trigger-type"] or names[2:] not in ([], ["trigger-parameter"]):
        raise OriginalParserError(f"expected id, trigger-type[, trigger-parameter], found {names}")
    values = dict(entry)
    if not all(isinstance(value, str) for value in values.values()):
        raise OriginalParserError(f"expected texts, found {values}")
    trigger = next((t for t in _TRIGGER_TYPES if t.lower() == values["trigger-type"].lower()), None)
    return {
        "id": values["id"],
        "trigger-type": trigger,
        "trigger-parameter": values.get("trigger-parameter"),
    }
