"""Logs: plain text or one JSON object per line, each carrying the id of its request.

`RequestLog` gives every request an id (the caller's `X-Request-Id` when it is a plain token,
else a new one), answers with it in `X-Request-Id`, and writes one access line per request:
method, path, status, duration, space and error type. No token is ever logged: the access
line names the space, not the token, and the messages of answered errors, which may quote an
unknown token, are not logged at all, only their `type`.

No logged value can forge a line or a field. In text, control characters and the Unicode line
breaks that `str.splitlines` splits on are written as `\\xHH` or `\\uHHHH` and a backslash
as `\\\\`; a field value with a space, `"` or `=` is quoted; a traceback's lines are indented. In
JSON they are JSON escapes.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import random
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "LoopFlushedHandler",
    "RequestLog",
    "TextFormatter",
    "configure",
    "escape",
    "id_header",
    "log_access",
    "logging_config",
    "request_id_of",
    "skip_process_details",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("logspace_request_id", default=None)
REQUEST_ID_HEADER: Final = "x-request-id"
_REQUEST_ID_NAME: Final = REQUEST_ID_HEADER.encode()
# Proxies' ids (nginx's $request_id, UUIDs) fit this; anything else is replaced, so a
# caller cannot write arbitrary text into the logs.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("logspace.access")


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
        pairs = _pairs(fields)
        return f"{line} {pairs}" if pairs else line


def _pairs(fields: dict[str, Any]) -> str:
    return " ".join([f"{key}={_value(value)}" for key, value in fields.items() if value != ""])


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")
_UNESCAPED_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r'[\s"=]')


_FORMATTERS: Final = (TextFormatter, JsonFormatter)


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
_WRITTEN_MAX = 1024


def _value(value: Any) -> str:
    if type(value) is int or type(value) is float:
        return str(value)  # digits, sign, point, exponent, inf or nan: never escaped or quoted
    if type(value) is str and len(value) <= 64:
        written = _written.get(value)
        if written is None:
            if len(_written) >= _WRITTEN_MAX:
                _written.clear()
            written = _written[value] = _write_value(value)
        return written
    return _write_value(str(value))


def _write_value(value: str) -> str:
    text = escape(value)
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class LoopFlushedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines of one event-loop iteration with one system
    call: a fleet's requests end by the hundred in one iteration (their shared bulk is
    answered), each with its access line, and a write per line was a tenth of HQ's CPU per
    request. Outside a running loop (start-up, shutdown, other threads) every line is
    written at once, as by `logging.StreamHandler`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(_block_buffered(stream or sys.stderr))
        # The loop a flush is scheduled on: a loop closed before it ran it holds nothing up.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # also at exit (`logging.shutdown`): whatever waits goes now
            super().flush()
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self._flush_now, loop)

    def _flush_now(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._scheduled_on is loop:
            self._scheduled_on = None
        super().flush()

    def write_line(self, line: str) -> bool:
        """Write a line formatted already, as `emit` writes a record's; False if that
        failed (the caller then logs the record the usual way, which reports the error)."""
        try:
            with self.lock:  # type: ignore[union-attr]  # `Handler.__init__` made it
                self.stream.write(line + self.terminator)
                self.flush()
        except RecursionError:
            raise
        except Exception:
            return False
        return True


def _block_buffered(stream: TextIO) -> TextIO:
    """`stream`, or when it is a line-buffered file (stderr) a block-buffered writer to the
    same file, so that lines wait in memory until the handler flushes them."""
    if not getattr(stream, "line_buffering", False):
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


class RequestLog:
    """ASGI middleware: a request id for every request, and one access line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        REQUEST_ID.set(request_id)
        # Endpoints and error handlers note the space and error type here (request.state).
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append(id_header(request_id))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            state.setdefault("error", "INTERNAL_ERROR")
            raise
        finally:
            # The id stays set on purpose: an unexpected error is logged after this, by the
            # outermost error handler, and should carry it too. Each request runs in a
            # context of its own, so it does not leak into the next.
            log_access(scope, status, started, state)


def log_access(scope: Scope, status: int, started: float, state: dict[str, Any]) -> None:
    """The access line of a request that began at `started` (`time.perf_counter`), with the
    space and error type its handlers noted in `state`: `RequestLog`'s, and that of HQ's
    lean `PUT /events` path (`app.HQApp`)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    method, path = scope["method"], scope["path"]
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "space": state.get("space", ""),
        "error": state.get("error", ""),
    }
    handler = _sole_handler()
    if handler is not None:
        # What `logging` would write through this handler, without a record and the
        # handler chain: that was two thirds of the line's cost, a tenth of a fleet's
        # small request (tests/ops/test_logs.py compares the two ways).
        formatter = handler.formatter
        if type(formatter) is TextFormatter:
            line = _text_access_line(fields)
        else:
            message = f"{method} {path} {status}"
            line = formatter.line(time.time(), "INFO", access_log.name, message, fields)  # type: ignore[union-attr]
        if handler.write_line(line):
            return
    # As `access_log.info` would, without looking up the caller's file and line (which no
    # formatter of ours writes): that lookup was half the line's cost.
    access_log.handle(
        access_log.makeRecord(
            access_log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s",
            (method, path, status),
            None,
            extra={"fields": fields},
        )
    )


def _text_access_line(fields: dict[str, Any]) -> str:
    """`TextFormatter.line` of an access line's record, from parts written before: all but
    the duration and the request id recur from line to line."""
    key = (fields["method"], fields["path"], fields["status"], fields["space"], fields["error"])
    parts = _access_parts.get(key)
    if parts is None:
        if len(_access_parts) >= _WRITTEN_MAX:
            _access_parts.clear()
        method, path, status, space, error = key
        head = f"INFO {access_log.name}: {escape(f'{method} {path} {status}')}"
        first = _pairs({"method": method, "path": path, "status": status})
        last = _pairs({"space": space, "error": error})
        parts = _access_parts[key] = (
            f"{head} {first} duration_ms=" if first else f"{head} duration_ms=",
            f" {last}" if last else "",
        )
    head, tail = parts
    line = f"{head}{_value(fields['duration_ms'])}{tail}"
    request_id = REQUEST_ID.get()
    return f"{line} request_id={_value(request_id)}" if request_id else line


_access_parts: dict[tuple[Any, ...], tuple[str, str]] = {}


def _sole_handler() -> LoopFlushedHandler | None:
    """The one handler an access line reaches, when it is ours as `logging_config` sets it up
    (no filter on the way, a formatter of ours), else None: then the line takes the
    `logging` way, so whatever else is configured (or a test's capture) sees the record."""
    if access_log.filters:
        return None
    found: logging.Handler | None = None
    logger: logging.Logger | None = access_log
    while logger is not None:
        for handler in logger.handlers:
            if found is not None:
                return None
            found = handler
        if not logger.propagate:
            break
        logger = logger.parent
    if (
        type(found) is LoopFlushedHandler
        and not found.filters
        and found.level <= logging.INFO
        and type(found.formatter) in _FORMATTERS
    ):
        return found
    return None


def id_header(request_id: str) -> tuple[bytes, bytes]:
    """The header that answers with the request's id."""
    return (_REQUEST_ID_NAME, request_id.encode())


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-Id` when it is a plain token, else a new one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_NAME:
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
    # 128 random bits, as 32 hex digits like a UUID's: an id, not a secret, so no system call.
    return f"{random.getrandbits(128):032x}"
