"""Problems: what is wrong with a JSON document and where, for orders and capabilities. Pure.

A `Problem` names its place by a JSON path, like `$.agent-orders[0].trigger-type`, so that a
message says exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Problem", "kind", "show", "unknown_fields"]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} at {self.path}"

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def unknown_fields(
    value: Mapping[str, Any], known: tuple[str, ...], path: str, problems: list[Problem]
) -> None:
    """A problem for each key of `value` that is not `known`: typos are reported, not ignored."""
    problems.extend(
        Problem(f"{path}.{key}", f"unknown field; known: {', '.join(known)}")
        for key in value
        if key not in known
    )


def kind(value: Any) -> str:
    """What a JSON value is, for messages: `a list`, `null`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def show(value: Any) -> str:
    """A scalar as JSON (`"Sometimes"`, `12`), anything else by its kind."""
    if isinstance(value, str | int | float | bool) or value is None:
        return orjson.dumps(value).decode()
    return kind(value)
