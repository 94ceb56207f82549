"""Capabilities: what an agent controller can run, as it tells HQ. Pure.

    {"id": "monitor", "system": "host1",
     "agent-capabilities": [{"id": "os/cpu", "type": "os/cpu",
                             "trigger-types": ["Off", "Scheduler"],
                             "property-descriptions": [{"name": "system_cpu_load",
                                                        "type": "DOUBLE",
                                                        "units": {"percent": 100.0}}]}]}

The original format. `space` may be sent but HQ sets it from the token. Trigger types and
property types are matched in any case and stored in the original's spelling. HQ keeps one
entry per space, controller id and system: many hosts share a controller id (and so one
order), and an operator wants to see each of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from logspace.decoder import load_json
from logspace.errors import InvalidCapabilities, InvalidControllerId
from logspace.orders import MAX_TEXT, TRIGGER_TYPES, is_controller_id, trigger_type
from logspace.problems import Problem, kind, show, unknown_fields

__all__ = [
    "PROPERTY_TYPES",
    "Capabilities",
    "check_controller_id",
    "document",
    "entry",
    "parse",
    "search_body",
]

PROPERTY_TYPES: Final = ("BOOLEAN", "DATE", "DOUBLE", "FLOAT", "INTEGER", "LONG", "STRING")
MAX_AGENTS: Final = 1000
MAX_DESCRIPTIONS: Final = 1000
KIND: Final = "capabilities"
# Elasticsearch's default result window; far more controllers than a space is expected to have.
MAX_LISTED: Final = 10_000


def check_controller_id(controller_id: str) -> str:
    if not is_controller_id(controller_id):
        raise InvalidControllerId(
            f"'{controller_id}' is not a valid controller ID: 1 to 128 letters, digits, '_', "
            "'-' and '.', starting with a letter or digit.",
            {"controller-id": controller_id},
        )
    return controller_id


@dataclass(frozen=True)
class Capabilities:
    controller_id: str
    system: str | None
    agents: tuple[dict[str, Any], ...]

    def to_json(self, space: str) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.controller_id}
        if self.system is not None:
            body["system"] = self.system
        body["space"] = space
        body["agent-capabilities"] = list(self.agents)
        return body


def parse(body: bytes, path_id: str) -> Capabilities:
    """The capabilities a controller uploads to `PUT /capabilities/{path_id}`."""
    check_controller_id(path_id)
    value = load_json(body)
    problems: list[Problem] = []
    if not isinstance(value, dict):
        _fail([Problem("$", f"expected an object, found {kind(value)}")])
    unknown_fields(value, ("id", "system", "space", "agent-capabilities"), "$", problems)
    body_id = value.get("id")
    if isinstance(body_id, str) and body_id != path_id:
        raise InvalidControllerId(
            "The ID in the path does not match the ID in the payload.",
            {"controller-id": path_id, "payload-id": body_id},
        )
    if not isinstance(body_id, str):
        problems.append(Problem("$.id", f"expected the controller id '{path_id}'"))
    system = value.get("system")
    if system is not None and not _text(system):
        problems.append(Problem("$.system", f"expected a text of 1 to {MAX_TEXT} characters"))
    if value.get("space") is not None and not isinstance(value.get("space"), str):
        problems.append(Problem("$.space", "expected a text (HQ sets it from the token)"))
    # The original's controllers leave the list out when they have no agent.
    agents = _agents(value.get("agent-capabilities", []), problems)
    if problems:
        _fail(problems)
    return Capabilities(path_id, system, agents)


def _agents(value: Any, problems: list[Problem]) -> tuple[dict[str, Any], ...]:
    path = "$.agent-capabilities"
    if not isinstance(value, list):
        problems.append(Problem(path, f"expected a list (possibly empty), found {kind(value)}"))
        return ()
    if len(value) > MAX_AGENTS:
        problems.append(Problem(path, f"more than {MAX_AGENTS} agents ({len(value)})"))
        return ()
    agents = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(where, f"expected an object, found {kind(item)}"))
            continue
        unknown_fields(
            item, ("id", "type", "trigger-types", "property-descriptions"), where, problems
        )
        agent: dict[str, Any] = {}
        agent_id = item.get("id")
        if not isinstance(agent_id, str) or not _text(agent_id):
            problems.append(
                Problem(f"{where}.id", f"expected a text of 1 to {MAX_TEXT} characters")
            )
        elif agent_id in seen:
            problems.append(Problem(f"{where}.id", f"agent {agent_id!r} is listed twice"))
        else:
            seen.add(agent_id)
            agent["id"] = agent_id
        type_ = item.get("type")
        if type_ is not None:
            if _text(type_):
                agent["type"] = type_
            else:
                problems.append(
                    Problem(f"{where}.type", f"expected a text of 1 to {MAX_TEXT} characters")
                )
        agent["trigger-types"] = _triggers(item.get("trigger-types"), where, problems)
        agent["property-descriptions"] = _descriptions(
            item.get("property-descriptions", []), where, problems
        )
        agents.append(agent)
    return tuple(agents)


def _triggers(value: Any, where: str, problems: list[Problem]) -> list[str]:
    path = f"{where}.trigger-types"
    if not isinstance(value, list):
        problems.append(
            Problem(path, f"expected a list of {', '.join(TRIGGER_TYPES)}, found {kind(value)}")
        )
        return []
    triggers: list[str] = []
    for index, item in enumerate(value):
        known = trigger_type(item)
        if known is None:
            problems.append(
                Problem(
                    f"{path}[{index}]",
                    f"expected one of {', '.join(TRIGGER_TYPES)}, found {show(item)}",
                )
            )
        elif known not in triggers:
            triggers.append(known)
    return triggers


def _descriptions(value: Any, where: str, problems: list[Problem]) -> list[dict[str, Any]]:
    path = f"{where}.property-descriptions"
    if not isinstance(value, list):
        problems.append(Problem(path, f"expected a list, found {kind(value)}"))
        return []
    if len(value) > MAX_DESCRIPTIONS:
        problems.append(Problem(path, f"more than {MAX_DESCRIPTIONS} entries ({len(value)})"))
        return []
    descriptions = []
    for index, item in enumerate(value):
        at = f"{path}[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(at, f"expected an object, found {kind(item)}"))
            continue
        unknown_fields(item, ("name", "type", "units"), at, problems)
        description: dict[str, Any] = {}
        if _text(item.get("name")):
            description["name"] = item["name"]
        else:
            problems.append(Problem(f"{at}.name", f"expected a text of 1 to {MAX_TEXT} characters"))
        type_ = item.get("type")
        if isinstance(type_, str) and type_.upper() in PROPERTY_TYPES:
            description["type"] = type_.upper()
        else:
            problems.append(
                Problem(
                    f"{at}.type",
                    f"expected one of {', '.join(PROPERTY_TYPES)}, found {show(type_)}",
                )
            )
        units = item.get("units")
        if units is not None:
            if isinstance(units, dict) and all(
                _text(unit) and _number(factor) for unit, factor in units.items()
            ):
                description["units"] = units
            else:
                problems.append(
                    Problem(f"{at}.units", "expected an object of unit names to numbers")
                )
        descriptions.append(description)
    return descriptions


def document(space: str, capabilities: Capabilities, now: datetime) -> tuple[str, dict[str, Any]]:
    """The Elasticsearch document id and source of one upload (see control-index.json)."""
    key = orjson.dumps([KIND, space, capabilities.controller_id, capabilities.system])
    return hashlib.sha256(key).hexdigest(), {
        "kind": KIND,
        "space": space,
        "controller-id": capabilities.controller_id,
        "system": capabilities.system,
        "agent-ids": [agent["id"] for agent in capabilities.agents],
        "updated": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "capabilities": capabilities.to_json(space),
    }


def search_body(controller_id: str | None = None) -> dict[str, Any]:
    """The search for a space's uploads (the store adds the space), by controller and system."""
    filters: list[dict[str, Any]] = [{"term": {"kind": KIND}}]
    if controller_id is not None:
        filters.append({"term": {"controller-id": controller_id}})
    return {
        "size": MAX_LISTED,
        "query": {"bool": {"filter": filters}},
        "sort": [{"controller-id": "asc"}, {"system": {"order": "asc", "missing": "_first"}}],
    }


def entry(source: dict[str, Any]) -> dict[str, Any]:
    """One stored upload as `GET /capabilities` lists it: the upload, and when it came."""
    listed: dict[str, Any] = source["capabilities"]
    return {**listed, "updated": source["updated"]}


def _fail(problems: list[Problem]) -> Any:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InvalidCapabilities(
        f"Invalid capabilities: {problems[0]}{more}.",
        {"errors": [problem.as_json() for problem in problems[:100]], "error-count": len(problems)},
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) > 0 and len(value) <= MAX_TEXT


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
