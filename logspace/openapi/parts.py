"""Building blocks of the OpenAPI document, shared by its parts. Pure data."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ERROR", "MANY", "TIME", "body", "errors", "json_content", "query", "ref"]

ERROR: Final = {"$ref": "#/components/responses/Error"}
MANY: Final = {"type": "array", "items": {"type": "string"}}
TIME: Final = {"type": "string", "format": "date-time", "examples": ["2015-05-18T14:07:00Z"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*statuses: int) -> dict[str, Any]:
    return {str(status): ERROR for status in statuses}


def json_content(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": schema}}}
