"""The log agent: a `logging.Handler` that turns log records into events.

Each record becomes a `log` event, the successor of the original journal agent's events:

    string   category (the logger name), message, level (INFO, ...), module, function,
             thread_name, exception (the formatted traceback, when there is one)
    integer  level_number, line

The timestamp is the record's creation time. Records of the agent library itself
(`logspace.agent`) are skipped, so an HQ outage cannot feed events about itself into the queue.

A logging call pays for this handler, so it only takes the record's values (the message
formatted, as every handler does it in the call) and hands them to the sink as a draft
(`draft.py`): a sender's thread writes the event's JSON (what `EventBuilder` builds from them,
encoded; in C where the extension is built, `log_json`) and checks it with many others. No
disk, no network and no encoding in the logging call (unless that thread falls far behind: see
`Buffer.put_draft`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .builder import Event, instant_from_timestamp, new_event
from .draft import DRAFT_MARGIN, Stamp, drafting
from .eventjson import heads, stamp_json, tail_json
from .sink import Sink

_log_json: Callable[..., list[bytes] | None] | None
try:
    from logspace.fastpath._transcode import log_json as _log_json
except ImportError:  # pragma: no cover - no C compiler: the events are built and encoded
    _log_json = None

__all__ = ["LogEvents", "LogHandler", "log_events"]

_OWN_LOGGER = "logspace.agent"
_OWN_PREFIX = _OWN_LOGGER + "."
# Formats tracebacks as logging.Formatter does by default.
_TRACEBACKS = logging.Formatter()

# type, agent id, created, category, message, level, level number, module, function, line,
# thread name, exception
LogValues = tuple[str, str, float, str, str, str, int, str, str, int, str, str | None]


def _events(drafts: Sequence[LogValues], ids: Sequence[str]) -> list[Event]:
    heads: dict[tuple[str, str], Event] = {}
    events: list[Event] = []
    for (
        event_type,
        agent_id,
        created,
        category,
        message,
        level,
        level_number,
        module,
        function,
        line,
        thread_name,
        exception,
    ), event_id in zip(drafts, ids, strict=True):
        head = heads.get((event_type, agent_id))
        if head is None:
            head = heads[event_type, agent_id] = new_event(event_type, agent_id, timestamp="-")
        strings = {
            "category": category,
            "message": message,
            "level": level,
            "module": module,
            "function": function,
            "thread_name": thread_name,
        }
        if exception is not None:
            strings["exception"] = exception
        event = head.copy()  # the order of new_event's fields: id and timestamp set in place
        event["id"] = event_id
        event["timestamp"] = instant_from_timestamp(created)
        event["string-properties"] = strings
        event["integer-properties"] = {"level_number": level_number, "line": line}
        events.append(event)
    return events


class LogEvents:
    """The `build` of the handler's drafts (see `draft.py`): their `log` events, as
    EventBuilder builds them, with these ids; or (`encoded`) straight the JSON that those
    events stamped by a sender encode to."""

    def __call__(self, drafts: Sequence[LogValues], ids: Sequence[str]) -> list[Event]:
        return _events(drafts, ids)

    def encoded(
        self,
        drafts: Sequence[LogValues],
        ids: Sequence[str],
        system: str | None,
        marker: str | None,
    ) -> list[bytes]:
        """Written by the C extension where it takes the group (the common case: no dict per
        record, and a fraction of the time holding the GIL the application needs); else the
        events built and encoded."""
        if _log_json is not None and type(drafts) is list and type(ids) is list:
            written = _log_json(drafts, ids, heads(system), stamp_json, tail_json(marker))
            if written is not None:
                return written
        stamp = Stamp(system, marker)
        return [orjson.dumps(stamp(event)) for event in _events(drafts, ids)]


log_events = LogEvents()


class LogHandler(logging.Handler):
    """`logging.getLogger().addHandler(LogHandler(sender))`."""

    def __init__(
        self,
        sink: Sink,
        *,
        agent_id: str = "log",
        event_type: str = "log",
        level: int | str = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.sink = sink
        self.agent_id = agent_id
        self.event_type = event_type
        self._send_draft = drafting(sink)

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == _OWN_LOGGER or name.startswith(_OWN_PREFIX):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Now, not later: the arguments may change once the call returns.
            message = record.getMessage()
            exception: Any = None
            if record.exc_info:
                exception = _TRACEBACKS.formatException(record.exc_info)
            elif record.exc_text:
                exception = record.exc_text
            values: LogValues = (
                self.event_type,
                self.agent_id,
                record.created,
                record.name,
                message,
                record.levelname,
                record.levelno,
                record.module,
                record.funcName or "",
                record.lineno,
                record.threadName or "",
                exception,
            )
            size = DRAFT_MARGIN + len(message) + (len(exception) if exception else 0)
            self._send_draft(log_events, values, size)
        except Exception:
            self.handleError(record)
