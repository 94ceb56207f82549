"""Access lines: `RequestLog` gives every request an id (the caller's first `X-Request-Id` when
it is a plain token, else a new one), answers with it in `X-Request-Id`, and writes one access
line per request: method, path, status, duration, space and error type. No token is ever
logged: the access line names the space, not the token, and the messages of answered errors,
which may quote an unknown token, are not logged at all, only their `type`.

A fleet of thousands of agents makes thousands of access lines a second that say only "202";
`LOGSPACE_ACCESS_LOG` keeps the lines of errors only, or none (`keep_lines`). The metrics
count every request either way.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logspace.ops.logs import (
    REQUEST_ID,
    REQUEST_ID_HEADER,
    WRITTEN_MAX,
    JsonFormatter,
    LoopFlushedHandler,
    TextFormatter,
    escape,
    field_pairs,
    field_value,
)

__all__ = [
    "RequestLog",
    "access_log",
    "id_header",
    "keep_lines",
    "log_access",
    "request_id_from",
    "request_id_of",
]

_REQUEST_ID_NAME: Final = REQUEST_ID_HEADER.encode()
# Proxies' ids (nginx's $request_id, UUIDs) fit this; anything else is replaced, so a
# caller cannot write arbitrary text into the logs.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("logspace.access")

# The lowest status that gets an access line, by `LOGSPACE_ACCESS_LOG` (parsers.ACCESS_LOG_MODES).
_LEAST_STATUS: Final = {"all": 0, "errors": 400, "off": 1000}
_least_status = 0


def keep_lines(mode: str) -> None:
    """Which access lines this process writes from now on, by `LOGSPACE_ACCESS_LOG`: `all`,
    `errors` (statuses of 400 and above, 499 for a client that went away included) or
    `off`. Like the rest of logging, this is the process's: each worker sets it as it creates
    its app."""
    global _least_status
    _least_status = _LEAST_STATUS[mode]


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
    if status < _least_status or not access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    method, path = scope["method"], scope["path"]
    space, error = state.get("space", ""), state.get("error", "")
    handler = _sole_handler()
    if handler is not None:
        # What `logging` would write through this handler, without a record and the
        # handler chain: that was two thirds of the line's cost, a tenth of a fleet's
        # small request (tests/ops/test_logs.py compares the two ways).
        formatter = handler.formatter
        if type(formatter) is TextFormatter:
            handler.write_line(_text_access_line(method, path, status, duration_ms, space, error))
            return
        fields = _fields(method, path, status, duration_ms, space, error)
        message = f"{method} {path} {status}"
        handler.write_line(
            formatter.line(time.time(), "INFO", access_log.name, message, fields)  # type: ignore[union-attr]
        )
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
            extra={"fields": _fields(method, path, status, duration_ms, space, error)},
        )
    )


def _fields(
    method: str, path: str, status: int, duration_ms: float, space: str, error: str
) -> dict[str, Any]:
    """An access line's fields, in their order."""
    return {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "space": space,
        "error": error,
    }


def _text_access_line(
    method: str, path: str, status: int, duration_ms: float, space: str, error: str
) -> str:
    """`TextFormatter.line` of an access line's record, from parts written before: all but
    the duration and the request id recur from line to line."""
    key = (method, path, status, space, error)
    parts = _access_parts.get(key)
    if parts is None:
        if len(_access_parts) >= WRITTEN_MAX:
            _access_parts.clear()
        head = f"INFO {access_log.name}: {escape(f'{method} {path} {status}')}"
        first = field_pairs({"method": method, "path": path, "status": status})
        last = field_pairs({"space": space, "error": error})
        parts = _access_parts[key] = (
            f"{head} {first} duration_ms=" if first else f"{head} duration_ms=",
            f" {last}" if last else "",
        )
    head, tail = parts
    request_id = REQUEST_ID.get()
    if not request_id:
        return f"{head}{duration_ms}{tail}"
    # HQ's own ids (32 hex digits, new for each request) are written as they are: escaping
    # them could never change them, and caching them only pushed the recurring values out.
    written = (
        request_id if request_id.isalnum() and request_id.isascii() else field_value(request_id)
    )
    return f"{head}{duration_ms}{tail} request_id={written}"


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
        and type(found.formatter) in (TextFormatter, JsonFormatter)
    ):
        return found
    return None


def id_header(request_id: str) -> tuple[bytes, bytes]:
    """The header that answers with the request's id."""
    return (_REQUEST_ID_NAME, request_id.encode())


def request_id_of(scope: Scope) -> str:
    """The request's id: see `request_id_from`, of its first `X-Request-Id` header."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_NAME:
            return request_id_from(value.decode("latin-1"))
    return request_id_from(None)


def request_id_from(given: str | None) -> str:
    """The caller's id (the first `X-Request-Id`, `given`) when it is a plain token, else a new
    one."""
    if given is not None and _VALID_REQUEST_ID.fullmatch(given):
        return given
    # 128 random bits, as 32 hex digits like a UUID's: an id, not a secret, so no system call
    # (and the bytes' `hex`, about half the cost of formatting a 128-bit number).
    return _random_bytes(16).hex()


_random_bytes = random.randbytes
