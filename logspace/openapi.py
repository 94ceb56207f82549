"""The OpenAPI 3.1 document of HQ's HTTP API, served at `GET /openapi.json`. Pure data.

Written by hand, next to `docs/api.md`; a test checks that it is valid OpenAPI and that it
names every route of `readroutes.READ_ROUTES` and `controlroutes.CONTROL_ROUTES` with the same
methods. Central control's part is in `openapi_control.py`.
"""

from __future__ import annotations

from typing import Any

from . import openapi_control

__all__ = ["document"]

_ERROR = {"$ref": "#/components/responses/Error"}
_TIME = {"type": "string", "format": "date-time", "examples": ["2015-05-18T14:07:00Z"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ERROR for status in statuses}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


_MANY = {"type": "array", "items": {"type": "string"}}
_FILTER_PARAMETERS = [
    _query("start", "Only events at or after this time.", _TIME),
    _query("end", "Only events before this time.", _TIME),
    _query("type", "Only events of these types (repeat for several).", _MANY, explode=True),
    _query("system", "Only events of these systems (repeat for several).", _MANY, explode=True),
    _query("agent-id", "Only events of these agents (repeat for several).", _MANY, explode=True),
    {
        "name": "where",
        "in": "query",
        "description": "A condition as JSON text, see the Condition schema.",
        "content": {"application/json": {"schema": _ref("Condition")}},
    },
    _query("order", "Time order.", {"enum": ["asc", "desc"], "default": "asc"}),
]
_SEARCH_PARAMETERS = [
    *_FILTER_PARAMETERS,
    _query("size", "Events per page.", {"type": "integer", "minimum": 0, "maximum": 1000}),
    _query("cursor", "`next-cursor` of the previous page.", {"type": "string"}),
]
_EXPORT_PARAMETERS = [
    *_FILTER_PARAMETERS,
    _query("format", "Output format.", {"enum": ["json", "ndjson", "csv"], "default": "json"}),
    _query(
        "delimiter",
        "CSV cell separator.",
        {"enum": ["comma", "semicolon", "tab"], "default": "comma"},
    ),
    _query("limit", "Export at most this many events.", {"type": "integer", "minimum": 1}),
]
_SUGGEST_PARAMETERS = [
    _query("text", "Case-insensitive prefix of a name or of a word in it.", {"type": "string"}),
    _query("agent-id", "Look only at these agents' events.", _MANY, explode=True),
    _query("system", "Look only at these systems' events.", _MANY, explode=True),
    _query("size", "Entries per list.", {"type": "integer", "minimum": 1, "maximum": 1000}),
]
_ACTIVITY_PARAMETERS = [
    _query(
        "duration",
        "Seconds before `end`.",
        {"type": "integer", "minimum": 60, "maximum": 2592000, "default": 900},
    ),
    _query(
        "steps",
        "Histogram buckets.",
        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    ),
    _query("end", "End of the window; default now.", _TIME),
    _query(
        "sort",
        "Order of the agents.",
        {
            "enum": [
                "count:desc",
                "count:asc",
                "system:asc",
                "system:desc",
                "agent-id:asc",
                "agent-id:desc",
            ],
            "default": "count:desc",
        },
    ),
    _query("offset", "Agents to skip.", {"type": "integer", "minimum": 0, "default": 0}),
    _query(
        "size",
        "Agents per page.",
        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 25},
    ),
]


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": schema}}}


_SCHEMAS: dict[str, Any] = {
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
        "required": ["id", "type", "system", "agent-id", "timestamp"],
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
            "double-properties": {"type": "object", "additionalProperties": {"type": "number"}},
            "float-properties": {"type": "object", "additionalProperties": {"type": "number"}},
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
                "properties": {"field": _ref("Field"), "equals": {}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["field", "one-of"],
                "properties": {"field": _ref("Field"), "one-of": {"type": "array", "minItems": 1}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["field", "range"],
                "properties": {
                    "field": _ref("Field"),
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
                "properties": {"field": _ref("Field"), "exists": {"type": "boolean"}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["and"],
                "properties": {"and": {"type": "array", "items": _ref("Condition")}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["or"],
                "properties": {"or": {"type": "array", "items": _ref("Condition")}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["not"],
                "properties": {"not": _ref("Condition")},
                "additionalProperties": False,
            },
        ]
    },
    "Filter": {
        "type": "object",
        "properties": {
            "start": _TIME,
            "end": _TIME,
            "type": {"oneOf": [{"type": "string"}, _MANY]},
            "system": {"oneOf": [{"type": "string"}, _MANY]},
            "agent-id": {"oneOf": [{"type": "string"}, _MANY]},
            "where": _ref("Condition"),
            "order": {"enum": ["asc", "desc"]},
        },
    },
    "SearchRequest": {
        "allOf": [
            _ref("Filter"),
            {
                "type": "object",
                "properties": {
                    "size": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "cursor": {"type": "string"},
                },
            },
        ]
    },
    "ExportRequest": {
        "allOf": [
            _ref("Filter"),
            {
                "type": "object",
                "properties": {
                    "format": {"enum": ["json", "ndjson", "csv"]},
                    "delimiter": {"enum": ["comma", "semicolon", "tab"]},
                    "limit": {"type": "integer", "minimum": 1},
                },
            },
        ]
    },
    "EventPage": {
        "type": "object",
        "required": ["total", "events", "next-cursor", "has-more"],
        "properties": {
            "total": {"type": "integer"},
            "events": {"type": "array", "items": _ref("Event")},
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
                        "property": _ref("Field"),
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
                        "where": _ref("Condition"),
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

_EXPORT_RESPONSE = {
    "description": "The events, streamed.",
    "content": {
        "application/json": {"schema": {"type": "array", "items": _ref("Event")}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}
_READ_ERRORS = _errors(400, 403, 413, 503)


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Logspace HQ",
            "version": "0.1.0",
            "description": "Stores typed events per space and answers queries on them. Every "
            "path is also served under /api. See docs/api.md.",
        },
        "servers": [{"url": "/"}, {"url": "/api"}],
        "security": [{"spaceToken": []}, {"bearer": []}],
        "paths": {
            "/events": {
                "put": {
                    "operationId": "storeEvents",
                    "summary": "Store a batch of events in the token's space.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": _ref("Event")}
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "Every event is stored."},
                        **_errors(400, 403, 413, 415, 422, 503),
                    },
                },
                "get": {
                    "operationId": "searchEvents",
                    "summary": "A page of events matching a filter, in time order.",
                    "parameters": _SEARCH_PARAMETERS,
                    "responses": {"200": _json(_ref("EventPage")), **_READ_ERRORS},
                },
                "post": {
                    "operationId": "searchEventsWithBody",
                    "summary": "The same search, with its parameters as a JSON body.",
                    "requestBody": _body(_ref("SearchRequest")),
                    "responses": {"200": _json(_ref("EventPage")), **_READ_ERRORS},
                },
            },
            "/events/export": {
                "get": {
                    "operationId": "exportEvents",
                    "summary": "Every event matching a filter, streamed as JSON, NDJSON or CSV.",
                    "parameters": _EXPORT_PARAMETERS,
                    "responses": {"200": _EXPORT_RESPONSE, **_READ_ERRORS},
                },
                "post": {
                    "operationId": "exportEventsWithBody",
                    "summary": "The same export, with its parameters as a JSON body.",
                    "requestBody": _body(_ref("ExportRequest")),
                    "responses": {"200": _EXPORT_RESPONSE, **_READ_ERRORS},
                },
            },
            "/time-series": {
                "post": {
                    "operationId": "timeSeries",
                    "summary": "One aggregated value per gap of [start, end), per definition.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TimeSeriesRequest")}},
                    },
                    "responses": {"200": _json(_ref("TimeSeries")), **_READ_ERRORS},
                }
            },
            "/suggestions": {
                "get": {
                    "operationId": "suggest",
                    "summary": "Agents, systems and properties whose names match a text.",
                    "parameters": _SUGGEST_PARAMETERS,
                    "responses": {"200": _json(_ref("Suggestions")), **_READ_ERRORS},
                },
                "post": {
                    "operationId": "suggestWithBody",
                    "summary": "The same, with its parameters as a JSON body.",
                    "requestBody": _body({"type": "object"}),
                    "responses": {"200": _json(_ref("Suggestions")), **_READ_ERRORS},
                },
            },
            "/agent-activity": {
                "get": {
                    "operationId": "agentActivity",
                    "summary": "Per agent, its event count and a histogram of a recent window.",
                    "parameters": _ACTIVITY_PARAMETERS,
                    "responses": {"200": _json(_ref("AgentActivity")), **_READ_ERRORS},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            **openapi_control.PATHS,
        },
        "components": {
            "securitySchemes": {
                "spaceToken": {"type": "apiKey", "in": "header", "name": "logspace.space-token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "responses": {
                "Error": _json(_ref("Error"), "An error; `type` says which (see docs/api.md).")
            },
            "schemas": {**_SCHEMAS, **openapi_control.SCHEMAS},
        },
    }
