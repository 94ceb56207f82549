"""How an error becomes an answer: the application's exception handlers, and the answer
of HQ's one error shape (`{"type", "message", "parameters"}`) for a `LogspaceError`."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from logspace.errors import (
    CLIENT_CLOSED_STATUS,
    CLIENT_CLOSED_TYPE,
    InternalError,
    LogspaceError,
    MethodNotAllowed,
    NotFound,
)
from logspace.ops.logs import REQUEST_ID, REQUEST_ID_HEADER

__all__ = [
    "answer_error",
    "client_gone",
    "error_response",
    "http_error",
    "logspace_error",
    "unexpected",
]

# The application's: operators know these lines by it.
log = logging.getLogger("logspace.app")


def error_response(error: LogspaceError) -> Response:
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def answer_error(request: Request, error: LogspaceError) -> Response:
    request.state.error = error.type  # for the access log
    if error.status >= 500:
        # A client reads its own 4xx; why HQ or Elasticsearch failed is the operator's to know.
        log.warning("%s %s: %s", error.status, error.type, error.message)
    return error_response(error)


async def logspace_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LogspaceError)
    return answer_error(request, exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return answer_error(
            request,
            MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}.",
                {"method": request.method, "path": request.url.path},
                headers=dict(exc.headers or {}),
            ),
        )
    # The router raises nothing else: every other path is simply not there.
    return answer_error(
        request, NotFound(f"There is nothing at {request.url.path}.", {"path": request.url.path})
    )


async def client_gone(request: Request, exc: Exception) -> Response:
    # Gone before its body was whole (killed, its network lost): nothing was stored, and no
    # answer can reach it. No bug of HQ's, so no error logged; the access line says so.
    request.state.error = CLIENT_CLOSED_TYPE
    return Response(status_code=CLIENT_CLOSED_STATUS)  # for the access line; never sent


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # This handler runs outside RequestLog, which therefore cannot add the id itself.
    request_id = REQUEST_ID.get()
    return error_response(
        InternalError(
            "An unexpected error occurred; it has been logged.",
            {},
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )
    )
