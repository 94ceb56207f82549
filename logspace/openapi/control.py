"""The central-control part of the OpenAPI document, merged in by `__init__.py`. Pure data.

Paths of `control.routes.CONTROL_ROUTES`: capabilities up from agent controllers, orders down.
"""

from __future__ import annotations

from typing import Any, Final

from .parts import errors, json_content, ref

__all__ = ["PATHS", "SCHEMAS"]

_TIME: Final = {"type": "string", "format": "date-time", "examples": ["2015-11-17T13:05:55Z"]}
_TRIGGER: Final = {"enum": ["Application", "Scheduler", "Off"]}


_CONTROLLER_ID: Final = {
    "name": "controller_id",
    "in": "path",
    "required": True,
    "description": "The controller id: 1 to 128 letters, digits, `_`, `-` and `.`.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,127}$"},
}
_HEADER: Final = {"schema": {"type": "string"}}

# What a controller uploads; a stored upload is the same plus `updated` (and `space` is set).
_CAPABILITIES: Final[dict[str, Any]] = {
    "id": {"type": "string"},
    "system": {"type": "string"},
    "space": {"type": "string", "description": "Ignored: HQ sets the token's space."},
    "agent-capabilities": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "trigger-types"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string"},
                "type": {"type": "string"},
                "trigger-types": {"type": "array", "items": _TRIGGER},
                "property-descriptions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {
                            "name": {"type": "string"},
                            "type": {
                                "enum": [
                                    "BOOLEAN",
                                    "DATE",
                                    "DOUBLE",
                                    "FLOAT",
                                    "INTEGER",
                                    "LONG",
                                    "STRING",
                                ]
                            },
                            "units": {
                                "type": "object",
                                "additionalProperties": {"type": "number"},
                            },
                        },
                    },
                },
            },
        },
    },
}

SCHEMAS: Final[dict[str, Any]] = {
    "Order": {
        "type": "object",
        "description": "As HQ serves it: always in this shape, which the original Java agents' "
        "parser reads (an order file without commit-max-seconds gets HQ's default).",
        "required": ["agent-orders", "commit-max-seconds"],
        "additionalProperties": False,
        "properties": {
            "agent-orders": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "trigger-type"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string"},
                        "trigger-type": _TRIGGER,
                        "trigger-parameter": {
                            "type": "string",
                            "description": "For Scheduler: a Quartz cron expression with a "
                            "seconds field, e.g. `0/10 * * * * ? *`.",
                        },
                    },
                },
            },
            "commit-max-seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
        },
    },
    "Capabilities": {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        "properties": _CAPABILITIES,
    },
    # Not an `allOf` with Capabilities: its `additionalProperties: false` would refuse `updated`.
    "StoredCapabilities": {
        "type": "object",
        "required": ["id", "space", "agent-capabilities", "updated"],
        "additionalProperties": False,
        "properties": {
            **_CAPABILITIES,
            "space": {"type": "string", "description": "The space of the token."},
            "updated": _TIME,
        },
    },
    "OrderListing": {
        "type": "object",
        "properties": {
            "orders": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "controller-id": {"type": "string"},
                        "file": {"type": "string"},
                        "last-modified": _TIME,
                        "order": ref("Order"),
                        "filled-in": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Fields HQ added to the file's order.",
                        },
                        "ignored": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Fields of the file HQ does not serve.",
                        },
                    },
                },
            },
            "invalid": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "controller-id": {"type": ["string", "null"]},
                        "file": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "path": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                        "previous-in-force": {"type": ["object", "null"]},
                    },
                },
            },
        },
    },
}

PATHS: Final[dict[str, Any]] = {
    "/capabilities": {
        "get": {
            "operationId": "listCapabilities",
            "summary": "What the agent controllers of the token's space uploaded (read access).",
            "parameters": [
                {
                    "name": "controller-id",
                    "in": "query",
                    "description": "Only this controller's uploads.",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": json_content(
                    {
                        "type": "object",
                        "properties": {
                            "capabilities": {"type": "array", "items": ref("StoredCapabilities")}
                        },
                    }
                ),
                **errors(400, 403, 503),
            },
        }
    },
    "/capabilities/{controller_id}": {
        "put": {
            "operationId": "uploadCapabilities",
            "summary": "An agent controller tells what it can run (write access).",
            "parameters": [_CONTROLLER_ID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("Capabilities")}},
            },
            "responses": {
                "200": json_content(
                    ref("StoredCapabilities"), "Stored; a listing shows it at once."
                ),
                **errors(400, 403, 408, 413, 415, 503),
            },
        }
    },
    "/orders": {
        "get": {
            "operationId": "listOrders",
            "summary": "The orders in force in the token's space and the invalid order files "
            "(read access).",
            "responses": {"200": json_content(ref("OrderListing")), **errors(400, 403)},
        }
    },
    "/orders/{controller_id}": {
        "get": {
            "operationId": "getOrder",
            "summary": "A controller's order, in the original format (any token of the space).",
            "parameters": [
                _CONTROLLER_ID,
                {"name": "If-None-Match", "in": "header", **_HEADER},
                {"name": "If-Modified-Since", "in": "header", **_HEADER},
            ],
            "responses": {
                "200": {
                    **json_content(ref("Order")),
                    "headers": {"Last-Modified": _HEADER, "ETag": _HEADER},
                },
                "304": {"description": "Not modified since the validators sent."},
                **errors(400, 403, 404),
            },
        }
    },
}
