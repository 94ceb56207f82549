"""The log agent: a `logging.Handler` that turns log records into events.

Each record becomes a `log` event, the successor of the original journal agent's events:

    string   category (the logger name), message, level (INFO, ...), module, function,
             thread_name, exception (the formatted traceback, when there is one)
    integer  level_number, line

The timestamp is the record's creation time. Records of the agent library itself
(`logspace.agent`) are skipped, so an HQ outage cannot feed events about itself into the queue.

A logging call pays for this handler, so it builds the event as a plain dict (what
`EventBuilder` would build; the sink checks the whole event with HQ's rules) and the sink only
buffers it: no disk commit and no network in the logging call.
"""

from __future__ import annotations

import logging

from .builder import instant_from_timestamp, new_event
from .sink import Sink

__all__ = ["LogHandler"]

_OWN_LOGGER = "logspace.agent"


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

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == _OWN_LOGGER or record.name.startswith(_OWN_LOGGER + "."):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            strings = {
                "category": record.name,
                "message": record.getMessage(),
                "level": record.levelname,
                "module": record.module,
                "function": record.funcName or "",
                "thread_name": record.threadName or "",
            }
            if record.exc_info:
                strings["exception"] = logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                strings["exception"] = record.exc_text
            created = instant_from_timestamp(record.created)
            event = new_event(self.event_type, self.agent_id, timestamp=created)
            event["string-properties"] = strings
            event["integer-properties"] = {"level_number": record.levelno, "line": record.lineno}
            self.sink.send(event)
        except Exception:
            self.handleError(record)
