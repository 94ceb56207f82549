"""Export: the events of a filter as a JSON array, NDJSON or CSV, encoded page by page.

`stream` asks for one page after the other (`search_after` on the search order) and yields
each page's encoding as soon as it has it, so an export of any size holds one page in
memory. It does no I/O itself: the route hands it the function that fetches a page.

CSV follows RFC 4180: a header row, `\\r\\n` after every row, and a cell in double quotes
(with its quotes doubled) only when it holds the delimiter, a quote or a line break.
Numbers are written as JSON writes them (`0.5`, `16490561536`, `1e+20`), never with a
locale's grouping; a string property with several values is written as a JSON array.
Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
carriage return) gets a leading `'`, as OWASP advises, unless `formulas=keep` is asked for:
anyone with a write token could otherwise plant formulas for whoever opens an export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from logspace.read.params import Params
from logspace.read.query import FAMILY_TYPES, EventFilter, Field, has_value, read_filter
from logspace.read.search import page_body

__all__ = [
    "CORE_COLUMNS",
    "FORMATS",
    "Export",
    "cell",
    "columns",
    "columns_body",
    "defused",
    "read_export",
    "stream",
]

MEDIA_TYPES: Final = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
FORMATS: Final = tuple(MEDIA_TYPES)
DELIMITERS: Final = {"comma": ",", "semicolon": ";", "tab": "\t"}
FORMULAS: Final = ("escape", "keep")
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
CORE_COLUMNS: Final = ("id", "type", "system", "agent-id", "timestamp", "pid", "gid", "marker")
PAGE_SIZE: Final = 1000
MAX_LIMIT: Final = 2**31 - 1

Fetch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Export:
    filter: EventFilter
    order: str
    format: str
    delimiter: str
    limit: int | None
    escape_formulas: bool = True

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def page_body(self, exported: int, after: list[Any] | None) -> dict[str, Any]:
        size = PAGE_SIZE if self.limit is None else min(PAGE_SIZE, self.limit - exported)
        return page_body(
            self.filter,
            self.order,
            size,
            None if after is None else (after[0], after[1]),
            total=False,
        )


def read_export(params: Params) -> Export:
    """The filter's parameters, plus `order`, `format`, `delimiter` and `limit`."""
    event_filter = read_filter(params)
    order = params.choice("order", ("asc", "desc"), default="asc")
    export_format = params.choice("format", FORMATS, default="json")
    delimiter = params.choice("delimiter", tuple(DELIMITERS), default="comma")
    limit = params.integer("limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    formulas = params.choice("formulas", FORMULAS, default="escape")
    params.finish()
    return Export(
        event_filter,
        order,
        export_format,
        DELIMITERS[delimiter],
        None if limit == MAX_LIMIT else limit,
        escape_formulas=formulas == "escape",
    )


def columns_body(event_filter: EventFilter, properties: Sequence[str]) -> dict[str, Any]:
    """Counts, per property, the filter's events that have it: one `filters` bucket each."""
    filters = [has_value(Field(name, FAMILY_TYPES[name.split(".", 1)[0]])) for name in properties]
    return {
        "size": 0,
        "query": event_filter.query(),
        "aggs": {"columns": {"filters": {"filters": filters}}},
    }


def columns(properties: Sequence[str], response: dict[str, Any]) -> list[str]:
    """The properties that at least one exported event has, sorted: the CSV's extra columns."""
    buckets = response["aggregations"]["columns"]["buckets"]
    return sorted(name for name, b in zip(properties, buckets, strict=True) if b["doc_count"])


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return cell(value[0]) if len(value) == 1 else orjson.dumps(value).decode()
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode() if isinstance(value, bool) else repr(value)
    return str(value)


def defused(value: Any) -> str:
    """`cell(value)`, with a `'` before text a spreadsheet would take for a formula."""
    text = cell(value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


class _Csv:
    def __init__(self, properties: Sequence[str], delimiter: str, escape_formulas: bool) -> None:
        self._cell = defused if escape_formulas else cell
        self._properties = [name.split(".", 1) for name in properties]
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\r\n")
        self.header = self._rows([[*CORE_COLUMNS, *properties]])

    def _rows(self, rows: list[list[str]]) -> bytes:
        self._writer.writerows(rows)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def page(self, events: list[dict[str, Any]]) -> bytes:
        return self._rows(
            [
                [self._cell(event.get(name)) for name in CORE_COLUMNS]
                + [self._cell(event.get(family, {}).get(name)) for family, name in self._properties]
                for event in events
            ]
        )


async def stream(
    export: Export, first: dict[str, Any], fetch: Fetch, properties: Sequence[str] = ()
) -> AsyncIterator[bytes]:
    """The export's bytes; `first` is the answer to `export.page_body(0, None)`."""
    table = (
        _Csv(properties, export.delimiter, export.escape_formulas)
        if export.format == "csv"
        else None
    )
    if table is not None:
        yield table.header
    elif export.format == "json":
        yield b"["
    exported = 0
    response = first
    while True:
        hits = response["hits"]["hits"]
        events = [hit["_source"] for hit in hits]
        if table is not None:
            yield table.page(events)
        elif export.format == "json" and events:
            separator = b"," if exported else b""
            yield separator + b",".join(orjson.dumps(event) for event in events)
        elif export.format == "ndjson":
            yield b"".join(orjson.dumps(event) + b"\n" for event in events)
        exported += len(events)
        wanted = export.page_body(exported, hits[-1]["sort"] if hits else None)
        if not hits or wanted["size"] == 0 or len(hits) < PAGE_SIZE:
            break
        response = await fetch(wanted)
    if export.format == "json":
        yield b"]"
