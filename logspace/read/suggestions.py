"""Suggestions: agents, systems and properties whose names match a text. Pure.

A text matches a name when the name, or one of its words, starts with the text, ignoring
case. Words are separated by any character other than an ASCII letter or digit, so `cpu`
matches `os/cpu` and `CPU`, and `used` matches `system_memory_used`. Agents and systems are
matched by Elasticsearch: a `terms` aggregation whose `include` is a regular expression built
here, with every character of the text escaped or spelt as a case class (there are no
case-insensitive analyzers on a plain node). Properties are matched here, on the names in
the space's mapping. `matches` is the rule in Python; the tests hold the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from logspace.read.params import Params
from logspace.read.query import FAMILY_TYPES, MAX_STRING_LENGTH, EventFilter, Field, has_value

__all__ = ["Suggest", "answer", "body", "candidates", "include_pattern", "matches", "read_suggest"]

DEFAULT_SIZE: Final = 20
MAX_SIZE: Final = 1000
MAX_TEXT_LENGTH: Final = 100
_WORD_START: Final = "(.*[^a-zA-Z0-9])?"


@dataclass(frozen=True)
class Suggest:
    text: str
    scope: EventFilter
    size: int

    @property
    def scoped(self) -> bool:
        return bool(self.scope.agent_ids or self.scope.systems)


def read_suggest(params: Params) -> Suggest:
    """`text`, and `agent-id` and `system` to look only at those agents' and systems' events."""
    text = params.text("text", max_length=MAX_TEXT_LENGTH) or ""
    agent_ids = params.texts("agent-id", max_length=MAX_STRING_LENGTH)
    systems = params.texts("system", max_length=MAX_STRING_LENGTH)
    size = params.integer("size", default=DEFAULT_SIZE, minimum=1, maximum=MAX_SIZE)
    params.finish()
    return Suggest(text, EventFilter(agent_ids=tuple(agent_ids), systems=tuple(systems)), size)


def _variants(char: str) -> str:
    """The characters that count as `char`: itself and its other case, if it has one."""
    lower, upper = char.lower(), char.upper()
    if len(lower) != 1 or len(upper) != 1:
        return char
    return "".join(dict.fromkeys((char, lower, upper)))


def _word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def matches(text: str, name: str) -> bool:
    """Does `name` or one of its words start with `text`, ignoring case?"""
    variants = [_variants(c) for c in text]
    for start in range(len(name) - len(text) + 1):
        if start and _word_char(name[start - 1]):
            continue
        if all(name[start + i] in v for i, v in enumerate(variants)):
            return True
    return False


def _literal(char: str) -> str:
    # Lucene reads `\` before a letter as a class (`\d`, `\w`), so only other ASCII is escaped.
    if char.isascii() and not char.isalnum():
        return "\\" + char
    return char


def include_pattern(text: str) -> str:
    """A Lucene regular expression matching the names that `matches(text, name)`."""
    parts = []
    for char in text:
        variants = _variants(char)
        parts.append(f"[{variants}]" if len(variants) > 1 else _literal(char))
    return _WORD_START + "".join(parts) + ".*"


def candidates(suggest: Suggest, properties: Sequence[str]) -> list[str]:
    """The mapped properties whose name (without the family) matches the text."""
    return [p for p in properties if matches(suggest.text, p.split(".", 1)[1])]


def body(suggest: Suggest, properties: Sequence[str]) -> dict[str, Any]:
    """Agents and systems by event count; when scoped, which `properties` its events have."""
    aggs: dict[str, Any] = {}
    for name, field in (("agents", "agent-id"), ("systems", "system")):
        terms: dict[str, Any] = {
            "field": field,
            "size": suggest.size,
            "order": [{"_count": "desc"}, {"_key": "asc"}],
        }
        if suggest.text:
            terms["include"] = include_pattern(suggest.text)
        aggs[name] = {"terms": terms}
    if suggest.scoped and properties:
        filters = [has_value(Field(p, FAMILY_TYPES[p.split(".", 1)[0]])) for p in properties]
        aggs["properties"] = {"filters": {"filters": filters}}
    return {"size": 0, "track_total_hits": False, "query": suggest.scope.query(), "aggs": aggs}


def answer(suggest: Suggest, properties: Sequence[str], response: dict[str, Any]) -> dict[str, Any]:
    # A space without indices yet answers without aggregations.
    aggregations = response.get("aggregations", {})
    if suggest.scoped and properties:
        buckets = aggregations["properties"]["buckets"]
        properties = [p for p, b in zip(properties, buckets, strict=True) if b["doc_count"]]
    elif suggest.scoped:
        properties = []
    described = []
    for name in properties:
        family, _, short = name.partition(".")
        described.append({"property": name, "name": short, "type": FAMILY_TYPES[family]})
    described.sort(key=lambda p: (p["name"].casefold(), p["property"]))
    return {
        "agents": [
            {"agent-id": b["key"], "event-count": b["doc_count"]}
            for b in aggregations.get("agents", {}).get("buckets", [])
        ],
        "systems": [
            {"system": b["key"], "event-count": b["doc_count"]}
            for b in aggregations.get("systems", {}).get("buckets", [])
        ],
        "properties": described[: suggest.size],
    }
