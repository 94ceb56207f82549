"""Event filters -> Elasticsearch query DSL. Pure.

A filter is built from parsed, validated input as structured queries (`term`, `terms`,
`range`, `exists`, `bool`); no input ever becomes query-string syntax, so no input can
change what a query means. Fields are the event's own (`type`, `agent-id`, `timestamp`, ...)
or typed properties named `<family>.<name>`, e.g. `double-properties.system_cpu_load`.

The condition language (`where`):

    {"field": F, "equals": V}          {"and": [C, ...]}
    {"field": F, "one-of": [V, ...]}   {"or": [C, ...]}
    {"field": F, "range": {"gte": V, "lt": V}}   (also gt, lte)
    {"field": F, "exists": true}       {"not": C}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from logspace.errors import InvalidParameter
from logspace.events import FAMILIES, BadValue, check_property_name, describe
from logspace.read.params import MISSING, Params, format_instant, parse_instant

__all__ = [
    "CORE_FIELDS",
    "FAMILY_TYPES",
    "NUMERIC_TYPES",
    "EventFilter",
    "Field",
    "check_value",
    "has_value",
    "parse_condition",
    "parse_field",
    "read_filter",
]

# The event's own fields and their types; `space` is not one: the token chooses it.
CORE_FIELDS: Final = {
    "id": "string",
    "type": "string",
    "system": "string",
    "agent-id": "string",
    "timestamp": "date",
    "pid": "string",
    "gid": "string",
    "marker": "string",
}
FAMILY_TYPES: Final = {
    "boolean-properties": "boolean",
    "date-properties": "date",
    "double-properties": "double",
    "float-properties": "float",
    "integer-properties": "integer",
    "long-properties": "long",
    "string-properties": "string",
}
NUMERIC_TYPES: Final = frozenset({"double", "float", "integer", "long"})

# String properties are indexed up to 8191 characters (`ignore_above`); longer never match.
MAX_STRING_LENGTH: Final = 8191
MAX_CONDITIONS: Final = 256
MAX_DEPTH: Final = 16
MAX_ONE_OF: Final = 1024
OPERATORS: Final = ("equals", "one-of", "range", "exists")
RANGE_BOUNDS: Final = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Field:
    """A field as the API names it, which is also its Elasticsearch field name."""

    name: str
    type: str

    @property
    def is_property(self) -> bool:
        return self.name not in CORE_FIELDS


def parse_field(value: Any, parameter: str) -> Field:
    if value is MISSING or value is None:
        raise InvalidParameter(parameter, "is required")
    if not isinstance(value, str):
        raise InvalidParameter(parameter, f"expected a field name, found {describe(value)}")
    if value in CORE_FIELDS:
        return Field(value, CORE_FIELDS[value])
    family, dot, name = value.partition(".")
    if dot and family in FAMILY_TYPES:
        try:
            check_property_name(name)
        except BadValue as error:
            raise InvalidParameter(parameter, str(error)) from None
        return Field(value, FAMILY_TYPES[family])
    raise InvalidParameter(
        parameter,
        f"unknown field {value[:100]!r}; expected one of {', '.join(CORE_FIELDS)} "
        "or a property as <family>.<name>, e.g. double-properties.system_cpu_load",
    )


def check_value(field: Field, value: Any, parameter: str) -> Any:
    """A value compared with `field`, checked against its type and normalised."""
    if field.type == "string":
        if not isinstance(value, str):
            raise InvalidParameter(parameter, f"expected a string, found {describe(value)}")
        if len(value) > MAX_STRING_LENGTH:
            raise InvalidParameter(parameter, f"longer than {MAX_STRING_LENGTH} characters")
        return value
    if field.type == "date":
        return format_instant(parse_instant(value, parameter))
    check, _ = FAMILIES[f"{field.type}-properties"]
    try:
        return check(value)
    except BadValue as error:
        raise InvalidParameter(parameter, str(error)) from None


def has_value(field: Field) -> dict[str, Any]:
    """Matches events where `field` has a value."""
    if "*" in field.name:
        # `exists` reads `*` in a field name as a wildcard; an open range never does.
        return {"range": {field.name: {}}}
    return {"exists": {"field": field.name}}


class _Budget:
    """Bounds the size of one request's conditions."""

    def __init__(self) -> None:
        self.left = MAX_CONDITIONS

    def spend(self, parameter: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise InvalidParameter(parameter, f"more than {MAX_CONDITIONS} conditions")


def parse_condition(value: Any, parameter: str) -> dict[str, Any]:
    """A `where` condition -> an Elasticsearch query."""
    return _condition(value, parameter, 0, _Budget())


def _condition(value: Any, parameter: str, depth: int, budget: _Budget) -> dict[str, Any]:
    budget.spend(parameter)
    if depth > MAX_DEPTH:
        raise InvalidParameter(parameter, f"conditions nest deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        raise InvalidParameter(parameter, f"expected a condition object, found {describe(value)}")
    for key in ("and", "or", "not"):
        if key in value:
            others = sorted(set(value) - {key})
            if others:
                raise InvalidParameter(f"{parameter}.{others[0]}", f"not allowed beside '{key}'")
            return _logical(key, value[key], f"{parameter}.{key}", depth, budget)
    node = Params(value, path=parameter)
    raw_field = node.raw("field")
    given = {op: node.raw(op) for op in OPERATORS}
    node.finish()
    target = parse_field(raw_field, node.name("field"))
    present = [op for op, operand in given.items() if operand is not MISSING]
    if len(present) != 1:
        raise InvalidParameter(
            parameter,
            "expected exactly one of 'equals', 'one-of', 'range', 'exists' "
            f"(or 'and', 'or', 'not'), found {len(present)}",
        )
    (op,) = present
    return _comparison(target, op, given[op], node.name(op))


def _logical(key: str, operand: Any, parameter: str, depth: int, budget: _Budget) -> dict[str, Any]:
    if key == "not":
        return {"bool": {"must_not": [_condition(operand, parameter, depth + 1, budget)]}}
    if not isinstance(operand, list) or not operand:
        raise InvalidParameter(
            parameter, f"expected a non-empty list of conditions, found {describe(operand)}"
        )
    parts = [
        _condition(item, f"{parameter}[{i}]", depth + 1, budget) for i, item in enumerate(operand)
    ]
    if key == "and":
        return {"bool": {"filter": parts}}
    return {"bool": {"should": parts, "minimum_should_match": 1}}


def _comparison(target: Field, op: str, operand: Any, parameter: str) -> dict[str, Any]:
    if op == "equals":
        return {"term": {target.name: check_value(target, operand, parameter)}}
    if op == "one-of":
        if not isinstance(operand, list) or not operand:
            raise InvalidParameter(
                parameter, f"expected a non-empty list of values, found {describe(operand)}"
            )
        if len(operand) > MAX_ONE_OF:
            raise InvalidParameter(parameter, f"more than {MAX_ONE_OF} values")
        values = [check_value(target, v, f"{parameter}[{i}]") for i, v in enumerate(operand)]
        return {"terms": {target.name: values}}
    if op == "exists":
        if not isinstance(operand, bool):
            raise InvalidParameter(parameter, f"expected true or false, found {describe(operand)}")
        query = has_value(target)
        return query if operand else {"bool": {"must_not": [query]}}
    return {"range": {target.name: _range(target, operand, parameter)}}


def _range(target: Field, operand: Any, parameter: str) -> dict[str, Any]:
    if target.type == "boolean":
        raise InvalidParameter(parameter, "a boolean field has no range; use 'equals'")
    if not isinstance(operand, dict):
        raise InvalidParameter(
            parameter, f"expected an object with gt, gte, lt or lte, found {describe(operand)}"
        )
    node = Params(operand, path=parameter)
    bounds = {bound: node.raw(bound) for bound in RANGE_BOUNDS}
    node.finish()
    given = {k: v for k, v in bounds.items() if v is not MISSING}
    if not given:
        raise InvalidParameter(parameter, "expected at least one of gt, gte, lt, lte")
    for low, high in (("gt", "gte"), ("lt", "lte")):
        if low in given and high in given:
            raise InvalidParameter(parameter, f"give '{low}' or '{high}', not both")
    return {k: check_value(target, v, node.name(k)) for k, v in given.items()}


@dataclass(frozen=True)
class EventFilter:
    """Which events: a time window [start, end), one-of lists of the main fields, a condition."""

    start: int | None = None
    end: int | None = None
    types: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    where: dict[str, Any] | None = None

    def clauses(self) -> list[dict[str, Any]]:
        clauses: list[dict[str, Any]] = []
        if self.start is not None or self.end is not None:
            window: dict[str, Any] = {"format": "epoch_millis"}
            if self.start is not None:
                window["gte"] = self.start
            if self.end is not None:
                window["lt"] = self.end
            clauses.append({"range": {"timestamp": window}})
        for name, values in (
            ("type", self.types),
            ("system", self.systems),
            ("agent-id", self.agent_ids),
        ):
            if values:
                clauses.append({"terms": {name: list(values)}})
        if self.where is not None:
            clauses.append(self.where)
        return clauses

    def query(self) -> dict[str, Any]:
        return {"bool": {"filter": self.clauses()}}


def read_filter(params: Params) -> EventFilter:
    """`start`, `end`, `type`, `system`, `agent-id` and `where` from request parameters."""
    start = params.instant("start")
    end = params.instant("end")
    if start is not None and end is not None and end <= start:
        raise InvalidParameter(params.name("end"), "must be after 'start'")
    where = params.json("where")
    return EventFilter(
        start=start,
        end=end,
        types=tuple(params.texts("type", max_length=MAX_STRING_LENGTH)),
        systems=tuple(params.texts("system", max_length=MAX_STRING_LENGTH)),
        agent_ids=tuple(params.texts("agent-id", max_length=MAX_STRING_LENGTH)),
        where=None
        if where is MISSING or where is None
        else parse_condition(where, params.name("where")),
    )
