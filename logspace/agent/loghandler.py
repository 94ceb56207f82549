"""The log agent: a `logging.Handler` that turns log records into events.

Each record becomes a `log` event, the successor of the original journal agent's events:

    string   category (the logger name), message, level (INFO, ...), module, function,
             thread_name, exception (the formatted traceback, when there is one)
    integer  level_number, line

The timestamp is the record's creation time. Records of the agent library itself
(`logspace.agent`) are skipped, so an HQ outage cannot feed events about itself into the queue.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .builder import EventBuilder
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
            builder = (
                EventBuilder(
                    self.event_type,
                    self.agent_id,
                    timestamp=datetime.fromtimestamp(record.created, UTC),
                )
                .string("category", record.name)
                .string("message", record.getMessage())
                .string("level", record.levelname)
                .integer("level_number", record.levelno)
                .string("module", record.module)
                .string("function", record.funcName or "")
                .integer("line", record.lineno)
                .string("thread_name", record.threadName or "")
            )
            if record.exc_info:
                builder.string("exception", logging.Formatter().formatException(record.exc_info))
            elif record.exc_text:
                builder.string("exception", record.exc_text)
            self.sink.send(builder.build())
        except Exception:
            self.handleError(record)
