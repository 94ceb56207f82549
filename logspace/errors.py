"""Every error HQ answers with, and the one table from error to HTTP status.

    LogspaceError                    status  type
    ├── MissingSpaceToken             403    MISSING_SPACE_TOKEN
    ├── InvalidSpaceToken             403    INVALID_SPACE_TOKEN
    ├── AccessDenied                  403    ACCESS_DENIED
    ├── MetricsTokenRequired          401    METRICS_TOKEN_REQUIRED (with WWW-Authenticate)
    ├── InvalidJson                   400    INVALID_JSON
    ├── InvalidBatch                  400    INVALID_BATCH
    ├── InvalidEvents                 400    INVALID_EVENTS
    ├── InvalidGzip                   400    INVALID_GZIP
    ├── InvalidParameter              400    INVALID_PARAMETER
    ├── InvalidControllerId           400    INVALID_CONTROLLER_ID
    ├── InvalidCapabilities           400    INVALID_CAPABILITIES
    ├── RequestTimeout                408    REQUEST_TIMEOUT     (and the connection closed)
    ├── RequestTooLarge               413    REQUEST_TOO_LARGE
    ├── HeadersTooLarge               431    HEADERS_TOO_LARGE   (and the connection closed)
    ├── TooManyEvents                 413    TOO_MANY_EVENTS
    ├── UnsupportedContentEncoding    415    UNSUPPORTED_CONTENT_ENCODING
    ├── EventsNotStored               422    EVENTS_NOT_STORED
    ├── StoreUnavailable              503    STORE_UNAVAILABLE   (with Retry-After)
    ├── Overloaded                    503    OVERLOADED          (with Retry-After)
    ├── NotReady                      503    NOT_READY
    ├── NotFound                      404    NOT_FOUND
    ├── OrderNotFound                 404    ORDER_NOT_FOUND
    ├── MethodNotAllowed              405    METHOD_NOT_ALLOWED
    └── InternalError                 500    INTERNAL_ERROR

A problem with one event is data (an `EventError`), collected into `InvalidEvents`. A client
that goes away before its body is whole gets no answer: its access line says 499
CLIENT_CLOSED_REQUEST (nginx's number), and so does the requests metric.
Every error renders as `{"type", "message", "parameters"}`; the seed contract's
MISSING_SPACE_TOKEN body is the one exception and carries no `parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "CLIENT_CLOSED_STATUS",
    "CLIENT_CLOSED_TYPE",
    "AccessDenied",
    "EventError",
    "EventsNotStored",
    "HeadersTooLarge",
    "InternalError",
    "InvalidBatch",
    "InvalidCapabilities",
    "InvalidControllerId",
    "InvalidEvents",
    "InvalidGzip",
    "InvalidJson",
    "InvalidParameter",
    "InvalidSpaceToken",
    "LogspaceError",
    "MethodNotAllowed",
    "MetricsTokenRequired",
    "MissingSpaceToken",
    "NotFound",
    "NotReady",
    "OrderNotFound",
    "Overloaded",
    "RequestTimeout",
    "RequestTooLarge",
    "StoreUnavailable",
    "TooManyEvents",
    "UnsupportedContentEncoding",
]

# Not an answer (see above): what the access line and the metrics say of a client gone.
CLIENT_CLOSED_STATUS: Final = 499
CLIENT_CLOSED_TYPE: Final = "CLIENT_CLOSED_REQUEST"


class LogspaceError(Exception):
    """Base of every error that becomes an HTTP answer."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        parameters: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.parameters: dict[str, Any] | None = {} if parameters is None else parameters
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.parameters is not None:
            body["parameters"] = self.parameters
        return body


class MissingSpaceToken(LogspaceError):
    status = 403
    type = "MISSING_SPACE_TOKEN"

    def __init__(self) -> None:
        super().__init__("Missing header 'logspace.space-token'.")
        # The seed contract shows this body without `parameters`, byte for byte.
        self.parameters = None


class InvalidSpaceToken(LogspaceError):
    status = 403
    type = "INVALID_SPACE_TOKEN"

    def __init__(self, token: str) -> None:
        super().__init__(f"Unrecognized space-token '{token}'.", {"space-token": token})


class AccessDenied(LogspaceError):
    """A valid token used for what it does not grant (e.g. reading with a write-only token)."""

    status = 403
    type = "ACCESS_DENIED"


class MetricsTokenRequired(LogspaceError):
    """GET /metrics without the metrics token (`LOGSPACE_METRICS_TOKEN`), or with another."""

    status = 401
    type = "METRICS_TOKEN_REQUIRED"

    def __init__(self) -> None:
        super().__init__(
            "GET /metrics needs the metrics token: send 'Authorization: Bearer <token>'.",
            {},
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


class InvalidJson(LogspaceError):
    status = 400
    type = "INVALID_JSON"


class InvalidBatch(LogspaceError):
    status = 400
    type = "INVALID_BATCH"


@dataclass(frozen=True, slots=True)
class EventError:
    """One problem with one event of a batch."""

    index: int
    id: str | None
    path: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "path": self.path, "message": self.message}


class InvalidEvents(LogspaceError):
    status = 400
    type = "INVALID_EVENTS"

    def __init__(self, errors: list[EventError], event_count: int, *, limit: int = 100) -> None:
        invalid = len({e.index for e in errors})
        first = errors[0]
        super().__init__(
            f"{invalid} of {event_count} events are invalid, nothing was stored. "
            f"First problem: {first.message} at {first.path}.",
            {
                "errors": [e.as_json() for e in errors[:limit]],
                "error-count": len(errors),
                "invalid-event-count": invalid,
                "event-count": event_count,
            },
        )
        self.errors = errors


class InvalidGzip(LogspaceError):
    status = 400
    type = "INVALID_GZIP"


class InvalidParameter(LogspaceError):
    """A query parameter (or a part of a query body) HQ cannot use; `parameter` names it."""

    status = 400
    type = "INVALID_PARAMETER"

    def __init__(self, parameter: str, reason: str, **details: Any) -> None:
        super().__init__(
            f"Invalid parameter '{parameter}': {reason}.",
            {"parameter": parameter, "reason": reason, **details},
        )
        self.parameter = parameter
        self.reason = reason


class InvalidControllerId(LogspaceError):
    """A controller id that is malformed, or differs between the path and the body."""

    status = 400
    type = "INVALID_CONTROLLER_ID"


class InvalidCapabilities(LogspaceError):
    """A capabilities document HQ cannot store; `parameters.errors` lists every problem."""

    status = 400
    type = "INVALID_CAPABILITIES"


class RequestTimeout(LogspaceError):
    """The request did not arrive whole in time (`LOGSPACE_REQUEST_READ_SECONDS`): a client
    that stalls must not hold a connection, and the memory of its half-read body, forever."""

    status = 408
    type = "REQUEST_TIMEOUT"

    def __init__(self, seconds: float, min_rate: int) -> None:
        super().__init__(
            f"The request did not arrive whole in time: {seconds:g} s for the headers and the "
            f"body's start, and the body at {min_rate} bytes a second or faster.",
            {"request-read-seconds": seconds, "min-body-bytes-per-second": min_rate},
        )


class RequestTooLarge(LogspaceError):
    status = 413
    type = "REQUEST_TOO_LARGE"


class TooManyEvents(LogspaceError):
    status = 413
    type = "TOO_MANY_EVENTS"


class HeadersTooLarge(LogspaceError):
    """The request line and headers are larger than HQ reads (`guardedprotocol.py`)."""

    status = 431
    type = "HEADERS_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request line and headers take more than {limit} bytes.",
            {"max-head-bytes": limit},
        )


class UnsupportedContentEncoding(LogspaceError):
    status = 415
    type = "UNSUPPORTED_CONTENT_ENCODING"


class EventsNotStored(LogspaceError):
    """Elasticsearch refused some events for good; sending them again will not help."""

    status = 422
    type = "EVENTS_NOT_STORED"


class _RetryLater(LogspaceError):
    """Nothing of the batch is lost by sending it again after `Retry-After` seconds."""

    status = 503

    def __init__(
        self, message: str, parameters: dict[str, Any] | None = None, *, retry_after: int = 5
    ) -> None:
        super().__init__(message, parameters, headers={"Retry-After": str(retry_after)})


class StoreUnavailable(_RetryLater):
    """Elasticsearch cannot take the events now."""

    type = "STORE_UNAVAILABLE"


class Overloaded(_RetryLater):
    """HQ already holds as much work in flight as it may; refused at once, not queued."""

    type = "OVERLOADED"


class NotReady(LogspaceError):
    """GET /health/ready: Elasticsearch does not answer, or index templates are missing."""

    status = 503
    type = "NOT_READY"


class NotFound(LogspaceError):
    status = 404
    type = "NOT_FOUND"


class OrderNotFound(LogspaceError):
    status = 404
    type = "ORDER_NOT_FOUND"

    def __init__(self, controller_id: str) -> None:
        super().__init__(
            f"There is no order for controller with ID '{controller_id}'.",
            {"controller-id": controller_id},
        )


class MethodNotAllowed(LogspaceError):
    status = 405
    type = "METHOD_NOT_ALLOWED"


class InternalError(LogspaceError):
    status = 500
    type = "INTERNAL_ERROR"
