"""The OpenAPI 3.1 document of HQ's HTTP API, served at `GET /openapi.json`. Pure data.

Written by hand, next to `docs/api.md`; a test checks that it is valid OpenAPI and that it
names every route of `app.API_ROUTES` with the same methods. Schemas are in `schemas.py`,
central control's part in `control.py`.
"""

from __future__ import annotations

from typing import Any

from logspace.read import activity

from . import control
from .parts import MANY as _MANY
from .parts import TIME as _TIME
from .parts import body, errors, json_content, query, ref
from .schemas import SCHEMAS

__all__ = ["document"]

_FILTER_PARAMETERS = [
    query("start", "Only events at or after this time.", _TIME),
    query("end", "Only events before this time.", _TIME),
    query("type", "Only events of these types (repeat for several).", _MANY, explode=True),
    query("system", "Only events of these systems (repeat for several).", _MANY, explode=True),
    query("agent-id", "Only events of these agents (repeat for several).", _MANY, explode=True),
    {
        "name": "where",
        "in": "query",
        "description": "A condition as JSON text, see the Condition schema.",
        "content": {"application/json": {"schema": ref("Condition")}},
    },
    query("order", "Time order.", {"enum": ["asc", "desc"], "default": "asc"}),
]
_SEARCH_PARAMETERS = [
    *_FILTER_PARAMETERS,
    query("size", "Events per page.", {"type": "integer", "minimum": 0, "maximum": 1000}),
    query("cursor", "`next-cursor` of the previous page.", {"type": "string"}),
]
_EXPORT_PARAMETERS = [
    *_FILTER_PARAMETERS,
    query("format", "Output format.", {"enum": ["json", "ndjson", "csv"], "default": "json"}),
    query(
        "delimiter",
        "CSV cell separator.",
        {"enum": ["comma", "semicolon", "tab"], "default": "comma"},
    ),
    query("limit", "Export at most this many events.", {"type": "integer", "minimum": 1}),
    query(
        "formulas",
        "CSV only: `escape` puts `'` before text a spreadsheet would run as a formula.",
        {"enum": ["escape", "keep"], "default": "escape"},
    ),
]
_SUGGEST_PARAMETERS = [
    query("text", "Case-insensitive prefix of a name or of a word in it.", {"type": "string"}),
    query("agent-id", "Look only at these agents' events.", _MANY, explode=True),
    query("system", "Look only at these systems' events.", _MANY, explode=True),
    query("size", "Entries per list.", {"type": "integer", "minimum": 1, "maximum": 1000}),
]
# The bounds are activity.py's own, so the document cannot drift from what HQ checks.
_ACTIVITY_PARAMETERS = [
    query(
        "duration",
        "Seconds before `end`.",
        {
            "type": "integer",
            "minimum": activity.MIN_DURATION,
            "maximum": activity.MAX_DURATION,
            "default": activity.DEFAULT_DURATION,
        },
    ),
    query(
        "steps",
        "Histogram buckets.",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": activity.MAX_STEPS,
            "default": activity.DEFAULT_STEPS,
        },
    ),
    query("end", "End of the window; default now.", _TIME),
    query(
        "sort",
        "Order of the agents.",
        {"enum": list(activity.SORTS), "default": activity.DEFAULT_SORT},
    ),
    query(
        "offset",
        "Agents to skip.",
        {"type": "integer", "minimum": 0, "maximum": activity.MAX_OFFSET, "default": 0},
    ),
    query(
        "size",
        "Agents per page.",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": activity.MAX_SIZE,
            "default": activity.DEFAULT_SIZE,
        },
    ),
]


_EXPORT_RESPONSE = {
    "description": "The events, streamed.",
    "content": {
        "application/json": {"schema": {"type": "array", "items": ref("Event")}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}
_READ_ERRORS = errors(400, 403, 408, 413, 503)


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
                            "application/json": {"schema": {"type": "array", "items": ref("Event")}}
                        },
                    },
                    "responses": {
                        "202": {"description": "Every event is stored."},
                        **errors(400, 403, 408, 413, 415, 422, 503),
                    },
                },
                "get": {
                    "operationId": "searchEvents",
                    "summary": "A page of events matching a filter, in time order.",
                    "parameters": _SEARCH_PARAMETERS,
                    "responses": {"200": json_content(ref("EventPage")), **_READ_ERRORS},
                },
                "post": {
                    "operationId": "searchEventsWithBody",
                    "summary": "The same search, with its parameters as a JSON body.",
                    "requestBody": body(ref("SearchRequest")),
                    "responses": {"200": json_content(ref("EventPage")), **_READ_ERRORS},
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
                    "requestBody": body(ref("ExportRequest")),
                    "responses": {"200": _EXPORT_RESPONSE, **_READ_ERRORS},
                },
            },
            "/time-series": {
                "post": {
                    "operationId": "timeSeries",
                    "summary": "One aggregated value per gap of [start, end), per definition.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("TimeSeriesRequest")}},
                    },
                    "responses": {"200": json_content(ref("TimeSeries")), **_READ_ERRORS},
                }
            },
            "/suggestions": {
                "get": {
                    "operationId": "suggest",
                    "summary": "Agents, systems and properties whose names match a text.",
                    "parameters": _SUGGEST_PARAMETERS,
                    "responses": {"200": json_content(ref("Suggestions")), **_READ_ERRORS},
                },
                "post": {
                    "operationId": "suggestWithBody",
                    "summary": "The same, with its parameters as a JSON body.",
                    "requestBody": body(ref("SuggestRequest")),
                    "responses": {"200": json_content(ref("Suggestions")), **_READ_ERRORS},
                },
            },
            "/agent-activity": {
                "get": {
                    "operationId": "agentActivity",
                    "summary": "Per agent, its event count and a histogram of a recent window.",
                    "parameters": _ACTIVITY_PARAMETERS,
                    "responses": {"200": json_content(ref("AgentActivity")), **_READ_ERRORS},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": json_content({"type": "object"})},
                }
            },
            **control.PATHS,
        },
        "components": {
            "securitySchemes": {
                "spaceToken": {"type": "apiKey", "in": "header", "name": "logspace.space-token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "responses": {
                "Error": json_content(
                    ref("Error"), "An error; `type` says which (see docs/api.md)."
                )
            },
            "schemas": {**SCHEMAS, **control.SCHEMAS},
        },
    }
