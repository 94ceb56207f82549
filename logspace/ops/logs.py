"""Logs: plain text or one JSON object per line, each carrying the id of its request
(the access lines are `accesslog`'s).

No logged value can forge a line or a field. In text, control characters and the Unicode line
breaks that `str.splitlines` splits on are written as `\\xHH` or `\\uHHHH` and a backslash
as `\\\\`; a field value with a space, `"` or `=` is quoted; a traceback's lines are indented. In
JSON they are JSON escapes.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

from logspace.ops.deferredflush import DeferredFlush

__all__ = [
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "WRITTEN_MAX",
    "JsonFormatter",
    "LoopFlushedHandler",
    "TextFormatter",
    "configure",
    "escape",
    "field_pairs",
    "field_value",
    "logging_config",
    "skip_process_details",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("logspace_request_id", default=None)
REQUEST_ID_HEADER: Final = "x-request-id"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id and the record's
    `fields` (given as `extra={"fields": {...}}`)."""

    def format(self, record: logging.LogRecord) -> str:
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "fields", {}),
            exception,
        )

    @staticmethod
    def line(
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        exception: str | None = None,
    ) -> str:
        """The line of a record made of these parts (`format`, and `log_access` without
        a record)."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": level.lower(),
            "logger": logger,
            "message": message,
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update((k, v) for k, v in fields.items() if v != "")
        if exception:
            entry["exception"] = exception
        # orjson escapes the C0 controls; DEL, C1 and the Unicode line separators it leaves.
        return _UNESCAPED_IN_JSON.sub(_json_escape, orjson.dumps(entry, default=str).decode())


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`, with the request id among the keys; a traceback
    follows on lines of its own, indented."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "fields", {}),
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for text in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if text:
                line += "".join(f"\n    {escape(part)}" for part in text.split("\n"))
        return line

    @staticmethod
    def line(created: float, level: str, logger: str, message: str, fields: dict[str, Any]) -> str:
        """The first line of a record made of these parts (`format`, and `log_access`
        without a record)."""
        line = f"{level} {logger}: {escape(message)}"
        request_id = REQUEST_ID.get()
        if request_id:
            fields = {**fields, "request_id": request_id}
        pairs = field_pairs(fields)
        return f"{line} {pairs}" if pairs else line


def field_pairs(fields: dict[str, Any]) -> str:
    return " ".join([f"{key}={field_value(value)}" for key, value in fields.items() if value != ""])


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")
_UNESCAPED_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _control_escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if match[0] == "\\":
        return "\\\\"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def escape(text: str) -> str:
    """`text` on one line, unambiguously: control characters and Unicode line breaks escaped
    as in a Python string literal, and so is the backslash."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text  # the common case, without a regular expression
    return _CONTROL.sub(_control_escape, text)


# Text values as written: an access line's method, path, space and error type recur on every
# line, and writing them anew was a third of the line's cost. Bounded, and only short ones.
_written: dict[str, str] = {}
WRITTEN_MAX: Final = 1024


def field_value(value: Any) -> str:
    if type(value) is int or type(value) is float:
        return str(value)  # digits, sign, point, exponent, inf or nan: never escaped or quoted
    if type(value) is str and len(value) <= 64:
        written = _written.get(value)
        if written is None:
            if len(_written) >= WRITTEN_MAX:
                _written.clear()
            written = _written[value] = _writefield_value(value)
        return written
    return _writefield_value(str(value))


def _writefield_value(value: str) -> str:
    text = escape(value)
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class LoopFlushedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the access lines of one event-loop iteration with one
    system call: a fleet's requests end by the hundred in one iteration (their shared bulk
    is answered), each with its access line, and a write per line was a tenth of HQ's CPU
    per request. Those lines come through `write_line`; any other record is written at once,
    with the lines before it, as by `logging.StreamHandler` (so a message logged as the
    server shuts down, just before the process ends by the signal it caught, is not lost).
    Off a running loop (start-up, shutdown, tools) every line goes at once; one written from
    another thread while a flush is due goes with that flush (`DeferredFlush`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(_block_buffered(stream or sys.stderr))
        self._flush_soon = DeferredFlush(self.flush).request
        # Lines waiting for the flush. Only the loop's thread adds to it, without the lock
        # (a list's append is atomic); whoever flushes takes what is there under the lock.
        self._pending: list[str] = []

    def write_line(self, line: str) -> None:
        """Write a line formatted already, as `emit` writes a record's, but once this loop
        iteration is over, with the others of the iteration in one piece (by `flush`, which
        reports a failure to write them as `emit` reports its own)."""
        self._pending.append(line)
        self._flush_soon()

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            with self.lock:  # type: ignore[union-attr]  # `Handler.__init__` made it
                self._write_pending()
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
        super().flush()

    def _write_pending(self) -> None:
        """Write the lines waiting (under the lock). Lines added meanwhile stay for the next
        time: a slice and its deletion are each one step for other threads."""
        pending = self._pending
        count = len(pending)
        if not count or self.stream is None:
            return
        lines = pending[:count]
        del pending[:count]
        try:
            self.stream.write(self.terminator.join(lines) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(_lines_record(lines))


def _lines_record(lines: list[str]) -> logging.LogRecord:
    """A record of access lines that could not be written, for `Handler.handleError`."""
    return logging.LogRecord(
        "logspace.access", logging.INFO, __file__, 0, "%d access line(s)", (len(lines),), None
    )


def _block_buffered(stream: TextIO) -> TextIO:
    """`stream`, or when it writes each line at once (stderr: line-buffered on a terminal,
    written through, unbuffered, to a pipe or a file) a block-buffered writer to the same
    file, so that lines wait in memory until the handler flushes them."""
    if not (getattr(stream, "line_buffering", False) or getattr(stream, "write_through", False)):
        return stream
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    return open(  # the handler's stream for the life of the process
        descriptor,
        "w",
        encoding=stream.encoding,
        errors=stream.errors,
        closefd=False,
    )


def logging_config(log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for HQ and uvicorn, in `text` or `json`."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "default": {
                "class": f"{__name__}.LoopFlushedHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"level": "INFO"},
            # RequestLog writes the access lines, with request ids.
            "uvicorn.access": {"level": "WARNING"},
            # One line per Elasticsearch request is noise at INFO.
            "elastic_transport": {"level": "WARNING"},
        },
        "root": {"level": "INFO", "handlers": ["default"]},
    }


def configure(log_format: str) -> None:
    skip_process_details()
    logging.config.dictConfig(logging_config(log_format))


def skip_process_details() -> None:
    """Records without their thread and process: no formatter of ours writes them, and
    finding them cost each access line about as much as formatting it."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
