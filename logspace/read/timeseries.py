"""Time series: per definition, one aggregated value per `gap` of [start, end). Pure.

A definition picks events (an agent, a system, a `where` condition), a property and an
aggregate; each becomes one search with a `date_histogram` whose buckets start at `start`.
Which aggregates fit which property type (the original Logspace's table, plus percentile
and distinct-count):

    boolean, string          count, distinct-count
    date                     count, min, max, avg, percentile, distinct-count
    integer, long, float,    count, min, max, avg, sum, percentile, distinct-count
    double

`count` counts events (that have the property, if one is named); an empty bucket counts 0,
and so does `distinct-count`. Every other aggregate is `null` for an empty bucket.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from logspace.errors import InvalidParameter
from logspace.events import describe
from logspace.read.params import MISSING, Params, format_instant
from logspace.read.query import (
    MAX_STRING_LENGTH,
    NUMERIC_TYPES,
    EventFilter,
    Field,
    has_value,
    parse_condition,
    parse_field,
)

__all__ = [
    "AGGREGATES",
    "MAX_BUCKETS",
    "Definition",
    "TimeSeries",
    "allowed_aggregates",
    "answer",
    "bodies",
    "bucket_position",
    "check_properties",
    "date_histogram",
    "read_time_series",
]

AGGREGATES: Final = ("count", "min", "max", "avg", "sum", "percentile", "distinct-count")
_COUNTING: Final = ("count", "distinct-count")
MAX_BUCKETS: Final = 10_000
MAX_DEFINITIONS: Final = 20
MAX_GAP_SECONDS: Final = 10 * 366 * 86_400
_METRICS: Final = {
    "min": "min",
    "max": "max",
    "avg": "avg",
    "sum": "sum",
    "percentile": "percentiles",
    "distinct-count": "cardinality",
}


def allowed_aggregates(field_type: str) -> tuple[str, ...]:
    if field_type in NUMERIC_TYPES:
        return AGGREGATES
    if field_type == "date":
        return tuple(a for a in AGGREGATES if a != "sum")
    return _COUNTING


@dataclass(frozen=True)
class Definition:
    filter: EventFilter
    property: Field | None
    aggregate: str
    percent: float | None = None


@dataclass(frozen=True)
class TimeSeries:
    start: int
    end: int
    gap: int
    definitions: tuple[Definition, ...]

    @property
    def gap_millis(self) -> int:
        return self.gap * 1000

    @property
    def bucket_count(self) -> int:
        return -(-(self.end - self.start) // self.gap_millis)


def read_time_series(params: Params) -> TimeSeries:
    """`start`, `end`, `gap` (seconds) and `definitions` from a request body."""
    start = params.instant("start")
    end = params.instant("end")
    gap = params.integer("gap", default=None, minimum=1, maximum=MAX_GAP_SECONDS)
    raw_definitions = params.raw("definitions")
    params.finish()
    if start is None:
        raise InvalidParameter(params.name("start"), "is required")
    if end is None:
        raise InvalidParameter(params.name("end"), "is required")
    if end <= start:
        raise InvalidParameter(params.name("end"), "must be after 'start'")
    series = TimeSeries(start, end, gap, ())
    if series.bucket_count > MAX_BUCKETS:
        raise InvalidParameter(
            params.name("gap"),
            f"[start, end) in steps of {gap} s makes {series.bucket_count} buckets, more than "
            f"{MAX_BUCKETS}; widen the gap or shorten the window",
            **{"requested-buckets": series.bucket_count, "max-buckets": MAX_BUCKETS},
        )
    name = params.name("definitions")
    if not isinstance(raw_definitions, list) or not raw_definitions:
        raise InvalidParameter(
            name, f"expected a non-empty list of definitions, found {describe(raw_definitions)}"
        )
    if len(raw_definitions) > MAX_DEFINITIONS:
        raise InvalidParameter(name, f"more than {MAX_DEFINITIONS} definitions")
    definitions = tuple(
        _definition(item, f"{name}[{i}]", start, end) for i, item in enumerate(raw_definitions)
    )
    return TimeSeries(start, end, gap, definitions)


def _definition(value: Any, path: str, start: int, end: int) -> Definition:
    if not isinstance(value, dict):
        raise InvalidParameter(path, f"expected a definition object, found {describe(value)}")
    params = Params(value, path=path)
    agent_id = params.text("agent-id", max_length=MAX_STRING_LENGTH)
    system = params.text("system", max_length=MAX_STRING_LENGTH)
    raw_property = params.raw("property")
    aggregate = params.choice("aggregate", AGGREGATES, default="count")
    raw_percent = params.raw("percent")
    where = params.raw("where")
    params.finish()
    field = None
    if raw_property is not MISSING and raw_property is not None:
        field = parse_field(raw_property, params.name("property"))
    elif aggregate != "count":
        raise InvalidParameter(params.name("property"), f"is required for '{aggregate}'")
    if field is not None and aggregate not in allowed_aggregates(field.type):
        allowed = allowed_aggregates(field.type)
        raise InvalidParameter(
            params.name("aggregate"),
            f"'{aggregate}' does not fit property '{field.name}' of type {field.type}; "
            f"allowed: {', '.join(allowed)}",
            **{"property-type": field.type, "allowed-aggregates": list(allowed)},
        )
    percent = _percent(raw_percent, aggregate, params.name("percent"))
    clauses = [] if field is None else [has_value(field)]
    if where is not MISSING and where is not None:
        clauses.append(parse_condition(where, params.name("where")))
    event_filter = EventFilter(
        start=start,
        end=end,
        systems=() if system is None else (system,),
        agent_ids=() if agent_id is None else (agent_id,),
        where={"bool": {"filter": clauses}} if clauses else None,
    )
    return Definition(event_filter, field, aggregate, percent)


def check_properties(series: TimeSeries, space: str, known: Collection[str]) -> None:
    """Every property the definitions name must be one the space has (`known`): a misspelt
    name would otherwise draw an empty chart."""
    for i, definition in enumerate(series.definitions):
        field = definition.property
        if field is None or "." not in field.name or field.name in known:
            continue  # no property, or one of the event's own fields
        reason = f"space '{space}' has no property '{field.name}'"
        close = difflib.get_close_matches(field.name, list(known), n=1)
        if close:
            reason += f" (did you mean '{close[0]}'?)"
        raise InvalidParameter(f"definitions[{i}].property", reason, property=field.name)


def _percent(value: Any, aggregate: str, parameter: str) -> float | None:
    if aggregate != "percentile":
        if value is not MISSING:
            raise InvalidParameter(parameter, "only goes with the aggregate 'percentile'")
        return None
    if value is MISSING:
        raise InvalidParameter(parameter, "is required for 'percentile', e.g. 95")
    if type(value) not in (int, float) or not 0 <= value <= 100:
        raise InvalidParameter(
            parameter, f"expected a number from 0 to 100, found {describe(value)}"
        )
    return float(value)


def bodies(series: TimeSeries) -> list[dict[str, Any]]:
    """One search per definition, in order."""
    return [_body(series, d) for d in series.definitions]


def date_histogram(start: int, end: int, gap_millis: int) -> dict[str, Any]:
    """Buckets of `gap_millis` from `start`, every one of them up to `end` (exclusive)."""
    return {
        "date_histogram": {
            "field": "timestamp",
            "fixed_interval": f"{gap_millis}ms",
            # Buckets start at `start`, not at multiples of the gap since 1970.
            "offset": f"{start % gap_millis}ms",
            "min_doc_count": 0,
            # Empty buckets too, up to the end. No `hard_bounds`: the query already holds
            # the window, and on Elasticsearch 9.5 they dropped the last bucket.
            "extended_bounds": {"min": start, "max": end - 1},
        }
    }


def bucket_position(key: int, start: int, gap_millis: int, count: int) -> int | None:
    """Which of `count` buckets from `start` a bucket key is, or None if none.

    Elasticsearch may add a bucket past the end (it rounds the bounds without the offset),
    so buckets are placed by key, and keys outside the window are left out."""
    position, remainder = divmod(key - start, gap_millis)
    if remainder or not 0 <= position < count:
        return None
    return position


def _body(series: TimeSeries, definition: Definition) -> dict[str, Any]:
    histogram = date_histogram(series.start, series.end, series.gap_millis)
    if definition.aggregate != "count":
        assert definition.property is not None
        metric: dict[str, Any] = {"field": definition.property.name}
        if definition.aggregate == "percentile":
            metric |= {"percents": [definition.percent], "keyed": False}
        histogram["aggs"] = {"value": {_METRICS[definition.aggregate]: metric}}
    return {
        "size": 0,
        "track_total_hits": False,
        "query": definition.filter.query(),
        "aggs": {"series": histogram},
    }


def answer(series: TimeSeries, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """The time-series answer from Elasticsearch's responses to `bodies`."""
    return {
        "start": format_instant(series.start),
        "end": format_instant(series.end),
        "gap": series.gap,
        "bucket-count": series.bucket_count,
        "data": [_values(series, d, r) for d, r in zip(series.definitions, responses, strict=True)],
    }


def _values(series: TimeSeries, definition: Definition, response: dict[str, Any]) -> list[Any]:
    empty: Any = 0 if definition.aggregate in _COUNTING else None
    values: list[Any] = [empty] * series.bucket_count
    # A space without indices yet answers without aggregations.
    for bucket in response.get("aggregations", {}).get("series", {}).get("buckets", []):
        position = bucket_position(
            bucket["key"], series.start, series.gap_millis, series.bucket_count
        )
        if position is not None and bucket["doc_count"]:
            values[position] = _value(definition, bucket)
    return values


def _value(definition: Definition, bucket: dict[str, Any]) -> Any:
    if definition.aggregate == "count":
        return bucket["doc_count"]
    assert definition.property is not None
    metric = bucket["value"]
    if definition.aggregate == "percentile":
        value = metric["values"][0]["value"]
    else:
        value = metric["value"]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    field_type = definition.property.type
    if definition.aggregate == "distinct-count":
        return int(value)
    if field_type == "date":
        return format_instant(value)
    if field_type in ("integer", "long") and definition.aggregate in ("min", "max", "sum"):
        return int(value)
    return value
