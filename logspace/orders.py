"""Orders: what HQ tells an agent controller to run, in the original Logspace's format. Pure.

    {"agent-orders": [{"id": "os/cpu", "trigger-type": "Scheduler",
                       "trigger-parameter": "0/10 * * * * ? *"},
                      {"id": "http/asgi", "trigger-type": "Application"},
                      {"id": "os/disk", "trigger-type": "Off"}],
     "commit-max-seconds": 10}

`trigger-type` is `Application`, `Scheduler` or `Off`, in any case. A `Scheduler` order needs a
`trigger-parameter`: a Quartz cron expression with a seconds field (see `logspace.cron`).
`commit-max-seconds` (optional, 0 to 86400) is how long events may wait in the agent before
they are sent; 0 sends at once (the original waited for ever). `agent-orders` may be left out
(no agent runs), and `commit-max-count`, which early versions of the original wrote, is read
and ignored (`Order.ignored`): the original's own example files have both. Other unknown
fields are refused, so a typo is reported instead of silently ignored.

HQ checks order files with `read_order`; the agent controller reads HQ's answers with it.
`Order.to_json()` writes the canonical form, in the field order the original Java parser needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from logspace.cron import Cron, CronError
from logspace.problems import Problem, kind, show, unknown_fields

__all__ = [
    "CONTROLLER_ID",
    "MAX_COMMIT_SECONDS",
    "ORIGINAL_COMMIT_SECONDS",
    "TRIGGER_TYPES",
    "AgentOrder",
    "InvalidOrder",
    "Order",
    "Problem",
    "TriggerType",
    "is_controller_id",
    "parse_order",
    "read_order",
    "trigger_type",
]

TriggerType = Literal["Application", "Scheduler", "Off"]
TRIGGER_TYPES: Final[tuple[TriggerType, ...]] = ("Application", "Scheduler", "Off")
MAX_COMMIT_SECONDS: Final = 86_400
# What the original Java controller waits without an order: the commit delay HQ serves when
# an order file has none, since that controller cannot read an order without one.
ORIGINAL_COMMIT_SECONDS: Final = 300
MAX_AGENT_ORDERS: Final = 1000
MAX_TEXT: Final = 255

# Controller ids name files (`<space>/<id>.json`, the agent's queue) and URL path segments.
CONTROLLER_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def is_controller_id(value: str) -> bool:
    return CONTROLLER_ID.fullmatch(value) is not None


def trigger_type(value: object) -> TriggerType | None:
    """The trigger type a text names, in any case; None if it names none."""
    if isinstance(value, str):
        for known in TRIGGER_TYPES:
            if value.lower() == known.lower():
                return known
    return None


class InvalidOrder(ValueError):
    """An order that cannot be followed; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid order: {problems[0]}{more}")


@dataclass(frozen=True)
class AgentOrder:
    agent_id: str
    trigger: TriggerType
    parameter: str | None = None
    # Parsed from `parameter` for Scheduler orders.
    schedule: Cron | None = None

    def to_json(self) -> dict[str, str]:
        entry = {"id": self.agent_id, "trigger-type": self.trigger}
        if self.parameter is not None:
            entry["trigger-parameter"] = self.parameter
        return entry


@dataclass(frozen=True)
class Order:
    agents: tuple[AgentOrder, ...] = ()
    commit_max_seconds: int | None = None
    # Fields read but not part of the order (not written by `to_json`).
    ignored: tuple[str, ...] = ()

    def get(self, agent_id: str) -> AgentOrder | None:
        for agent in self.agents:
            if agent.agent_id == agent_id:
                return agent
        return None

    def to_json(self) -> dict[str, Any]:
        """The original format, `agent-orders` first as the original Java parser needs."""
        body: dict[str, Any] = {"agent-orders": [agent.to_json() for agent in self.agents]}
        if self.commit_max_seconds is not None:
            body["commit-max-seconds"] = self.commit_max_seconds
        return body

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())


def parse_order(body: bytes | str, *, now: datetime | None = None) -> Order:
    """An order from JSON text; `InvalidOrder` naming every problem."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidOrder(
            [
                Problem(
                    "$", f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
                )
            ]
        ) from None
    return read_order(value, now=now)


def read_order(value: Any, *, now: datetime | None = None) -> Order:
    """An order from decoded JSON. A schedule that never fires after `now` (default: the
    current time) is a problem too, e.g. `0 0 0 30 2 ?` or a year gone by."""
    problems: list[Problem] = []
    if not isinstance(value, dict):
        raise InvalidOrder([Problem("$", f"expected an object, found {kind(value)}")])
    unknown_fields(value, ("agent-orders", "commit-max-seconds", "commit-max-count"), "$", problems)
    entries = value.get("agent-orders", [])
    agents: list[AgentOrder] = []
    if not isinstance(entries, list):
        problems.append(Problem("$.agent-orders", f"expected a list, found {kind(entries)}"))
    elif len(entries) > MAX_AGENT_ORDERS:
        problems.append(
            Problem("$.agent-orders", f"more than {MAX_AGENT_ORDERS} entries ({len(entries)})")
        )
    else:
        seen: set[str] = set()
        moment = now or datetime.now(UTC)
        for index, entry in enumerate(entries):
            agent = _agent_order(entry, f"$.agent-orders[{index}]", moment, problems)
            if agent is None:
                continue
            if agent.agent_id in seen:
                problems.append(
                    Problem(
                        f"$.agent-orders[{index}].id",
                        f"agent {agent.agent_id!r} has an order already",
                    )
                )
            seen.add(agent.agent_id)
            agents.append(agent)
    commit = value.get("commit-max-seconds")
    if commit is not None and not (
        type(commit) is int and 0 <= commit <= MAX_COMMIT_SECONDS  # bool is no int here
    ):
        problems.append(
            Problem(
                "$.commit-max-seconds",
                f"expected a whole number of seconds from 0 to {MAX_COMMIT_SECONDS}, "
                f"found {show(commit)}",
            )
        )
    ignored: tuple[str, ...] = ()
    if "commit-max-count" in value:
        count = value["commit-max-count"]
        if type(count) is not int or count < 0:
            problems.append(
                Problem("$.commit-max-count", f"expected a whole number, found {show(count)}")
            )
        ignored = ("commit-max-count",)
    if problems:
        raise InvalidOrder(problems)
    return Order(tuple(agents), commit, ignored)


def _agent_order(
    entry: Any, path: str, now: datetime, problems: list[Problem]
) -> AgentOrder | None:
    if not isinstance(entry, dict):
        problems.append(Problem(path, f"expected an object, found {kind(entry)}"))
        return None
    before = len(problems)
    unknown_fields(entry, ("id", "trigger-type", "trigger-parameter"), path, problems)
    agent_id = entry.get("id")
    if not isinstance(agent_id, str) or not agent_id.strip() or len(agent_id) > MAX_TEXT:
        problems.append(
            Problem(f"{path}.id", f"expected the agent id, a text of 1 to {MAX_TEXT} characters")
        )
    raw_trigger = entry.get("trigger-type")
    trigger = trigger_type(raw_trigger)
    if trigger is None:
        problems.append(
            Problem(
                f"{path}.trigger-type",
                f"expected one of {', '.join(TRIGGER_TYPES)}, found {show(raw_trigger)}",
            )
        )
    parameter = entry.get("trigger-parameter")
    schedule = None
    if parameter is not None and not isinstance(parameter, str):
        problems.append(
            Problem(f"{path}.trigger-parameter", f"expected a text, found {kind(parameter)}")
        )
    elif trigger == "Scheduler":
        schedule = _schedule(parameter, f"{path}.trigger-parameter", now, problems)
    if len(problems) > before:
        return None
    assert isinstance(agent_id, str)
    assert trigger is not None
    return AgentOrder(agent_id, trigger, parameter, schedule)


def _schedule(
    parameter: str | None, path: str, now: datetime, problems: list[Problem]
) -> Cron | None:
    if parameter is None:
        problems.append(
            Problem(path, "a Scheduler order needs a cron expression, e.g. '0/10 * * * * ? *'")
        )
        return None
    try:
        schedule = Cron.parse(parameter)
    except CronError as error:
        problems.append(Problem(path, f"not a cron expression: {error}"))
        return None
    if schedule.next_after(now) is None:
        problems.append(Problem(path, f"the schedule {parameter!r} never fires again"))
        return None
    return schedule
