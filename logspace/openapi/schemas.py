"""Schemas of events, errors and the read API's bodies and answers. Pure data."""

from __future__ import annotations

from typing import Any, Final

from .parts import MANY as _MANY
from .parts import TIME as _TIME
from .parts import ref

__all__ = ["SCHEMAS"]

# A number, or a non-finite one: sent bare (NaN) by the Java agents, stored as a string.
_FLOATING: Final = {"oneOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
# The filter's members, shared by the request bodies below. Each body lists every member it
# takes and refuses any other, as HQ does: an `allOf` of open objects would take any key.
_FILTER: Final[dict[str, Any]] = {
    "start": _TIME,
    "end": _TIME,
    "type": {"oneOf": [{"type": "string"}, _MANY]},
    "system": {"oneOf": [{"type": "string"}, _MANY]},
    "agent-id": {"oneOf": [{"type": "string"}, _MANY]},
    "where": ref("Condition"),
    "order": {"enum": ["asc", "desc"]},
}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["type", "message"],
        "properties": {
            "type": {"type": "string", "examples": ["INVALID_PARAMETER"]},
            "message": {"type": "string"},
            "parameters": {"type": "object"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "system", "agent-id", "timestamp"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "system": {"type": "string"},
            "agent-id": {"type": "string"},
            "timestamp": _TIME,
            "pid": {"type": "string"},
            "gid": {"type": "string"},
            "marker": {"type": "string"},
            "boolean-properties": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "date-properties": {"type": "object", "additionalProperties": _TIME},
            "double-properties": {"type": "object", "additionalProperties": _FLOATING},
            "float-properties": {"type": "object", "additionalProperties": _FLOATING},
            "integer-properties": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
            },
            "long-properties": {"type": "object", "additionalProperties": {"type": "integer"}},
            "string-properties": {
                "type": "object",
                "additionalProperties": {
                    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                },
            },
        },
    },
    "Field": {
        "type": "string",
        "description": "id, type, system, agent-id, timestamp, pid, gid, marker, or a "
        "property as <family>.<name>, e.g. double-properties.system_cpu_load.",
    },
    "Condition": {
        "oneOf": [
            {
                "type": "object",
                "required": ["field", "equals"],
                "properties": {"field": ref("Field"), "equals": {}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["field", "one-of"],
                "properties": {"field": ref("Field"), "one-of": {"type": "array", "minItems": 1}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["field", "range"],
                "properties": {
                    "field": ref("Field"),
                    "range": {
                        "type": "object",
                        "properties": {"gt": {}, "gte": {}, "lt": {}, "lte": {}},
                        "additionalProperties": False,
                        "minProperties": 1,
                    },
                },
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["field", "exists"],
                "properties": {"field": ref("Field"), "exists": {"type": "boolean"}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["and"],
                "properties": {"and": {"type": "array", "items": ref("Condition")}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["or"],
                "properties": {"or": {"type": "array", "items": ref("Condition")}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["not"],
                "properties": {"not": ref("Condition")},
                "additionalProperties": False,
            },
        ]
    },
    "Filter": {"type": "object", "properties": _FILTER, "additionalProperties": False},
    "SearchRequest": {
        "type": "object",
        "properties": {
            **_FILTER,
            "size": {"type": "integer", "minimum": 0, "maximum": 1000},
            "cursor": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "ExportRequest": {
        "type": "object",
        "properties": {
            **_FILTER,
            "format": {"enum": ["json", "ndjson", "csv"]},
            "delimiter": {"enum": ["comma", "semicolon", "tab"]},
            "limit": {"type": "integer", "minimum": 1},
            "formulas": {"enum": ["escape", "keep"]},
        },
        "additionalProperties": False,
    },
    "SuggestRequest": {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "agent-id": {"oneOf": [{"type": "string"}, _MANY]},
            "system": {"oneOf": [{"type": "string"}, _MANY]},
            "size": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        "additionalProperties": False,
    },
    "EventPage": {
        "type": "object",
        "required": ["total", "events", "next-cursor", "has-more"],
        "properties": {
            "total": {"type": "integer"},
            "events": {"type": "array", "items": ref("Event")},
            "next-cursor": {"type": ["string", "null"]},
            "has-more": {"type": "boolean"},
        },
    },
    "TimeSeriesRequest": {
        "type": "object",
        "required": ["start", "end", "gap", "definitions"],
        "properties": {
            "start": _TIME,
            "end": _TIME,
            "gap": {"type": "integer", "minimum": 1, "description": "Seconds per bucket."},
            "definitions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "properties": {
                        "agent-id": {"type": "string"},
                        "system": {"type": "string"},
                        "property": ref("Field"),
                        "aggregate": {
                            "enum": [
                                "count",
                                "min",
                                "max",
                                "avg",
                                "sum",
                                "percentile",
                                "distinct-count",
                            ]
                        },
                        "percent": {"type": "number", "minimum": 0, "maximum": 100},
                        "where": ref("Condition"),
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
    "TimeSeries": {
        "type": "object",
        "properties": {
            "start": _TIME,
            "end": _TIME,
            "gap": {"type": "integer"},
            "bucket-count": {"type": "integer"},
            "data": {
                "type": "array",
                "items": {"type": "array", "items": {"type": ["number", "string", "null"]}},
            },
        },
    },
    "Suggestions": {
        "type": "object",
        "properties": {
            "agents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "agent-id": {"type": "string"},
                        "event-count": {"type": "integer"},
                    },
                },
            },
            "systems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "system": {"type": "string"},
                        "event-count": {"type": "integer"},
                    },
                },
            },
            "properties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "property": {"type": "string"},
                        "name": {"type": "string"},
                        "type": {
                            "enum": [
                                "boolean",
                                "date",
                                "double",
                                "float",
                                "integer",
                                "long",
                                "string",
                            ]
                        },
                    },
                },
            },
        },
    },
    "AgentActivity": {
        "type": "object",
        "properties": {
            "start": _TIME,
            "end": _TIME,
            "gap": {"type": "number", "description": "Seconds per histogram bucket."},
            "steps": {"type": "integer"},
            "sort": {"type": "string"},
            "offset": {"type": "integer"},
            "total": {"type": "integer"},
            "complete": {"type": "boolean"},
            "max-history-value": {"type": "integer"},
            "agents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "system": {"type": "string"},
                        "agent-id": {"type": "string"},
                        "event-count": {"type": "integer"},
                        "history": {"type": "array", "items": {"type": "integer"}},
                    },
                },
            },
        },
    },
}
