"""What to do with HQ's answer to a batch, and how long to wait before trying again. Pure.

`classify(status, headers, body, size)` maps every answer in `docs/api.md` to one `Outcome`:

    202                                   delivered
    422 EVENTS_NOT_STORED                 delivered, minus the listed events (dropped, reported)
    400 INVALID_EVENTS                    drop the listed events, send the rest again now
    400 other, 413, unusable 400/422      split the batch (a single event is dropped)
    415                                   stop compressing, send again now
    408, 429, 5xx                         retry after a backoff honouring Retry-After
    500                                   the same, but repeated 500s split the batch (poison)
    401, 403, 404, 405, other             hold: a configuration problem, keep everything queued

Only 202 counts as success: a 200 from something that is not HQ must not lose events.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = ["RETRY_AFTER_CAP", "Outcome", "backoff_delay", "classify", "retry_after"]

Action = Literal["delivered", "drop", "split", "retry", "hold", "uncompress"]

# A Retry-After beyond an hour is more likely a misconfigured proxy than a plan.
RETRY_AFTER_CAP = 3600.0


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    reason: str
    # Positions in the batch of events to drop for good, with why.
    drops: dict[int, str] = field(default_factory=dict)
    retry_after: float | None = None
    # A 500: retried, but a batch that keeps getting it is split and finally dropped.
    suspect: bool = False


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta seconds or HTTP date), capped; else None."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds: float
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff_delay(
    failures: int, initial: float, maximum: float, random: Callable[[], float]
) -> float:
    """Exponential backoff with "equal jitter": between half and all of initial * 2^(n-1)."""
    base = min(maximum, initial * 2.0 ** min(max(failures - 1, 0), 62))
    return base / 2 + random() * base / 2


def _error_body(content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _indexed_errors(body: Mapping[str, Any], size: int) -> dict[int, str]:
    parameters = body.get("parameters")
    errors = parameters.get("errors") if isinstance(parameters, dict) else None
    found: dict[int, str] = {}
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        index = error.get("index")
        if type(index) is int and 0 <= index < size:
            detail = error.get("message") or error.get("reason") or error.get("error") or ""
            where = f" at {error['path']}" if isinstance(error.get("path"), str) else ""
            found.setdefault(index, f"{detail}{where}")
    return found


def classify(status: int, headers: Mapping[str, str], content: bytes, size: int) -> Outcome:
    """The outcome of sending a batch of `size` events."""
    if status == 202:
        return Outcome("delivered", "202 Accepted")
    body = _error_body(content)
    type_ = body.get("type") if isinstance(body.get("type"), str) else None
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    reason = f"HTTP {status}" + (f" {type_}" if type_ else "") + (f": {message}" if message else "")
    if status == 422 and type_ == "EVENTS_NOT_STORED":
        refused = _indexed_errors(body, size)
        if refused:
            return Outcome("delivered", reason, drops=refused)
        return Outcome("split", reason)
    if status == 400 and type_ == "INVALID_EVENTS":
        invalid = _indexed_errors(body, size)
        if invalid:
            return Outcome("drop", reason, drops=invalid)
        return Outcome("split", reason)
    if status in (400, 413, 422):
        return Outcome("split", reason)
    if status == 415:
        return Outcome("uncompress", reason)
    if status in (408, 429) or status >= 500:
        return Outcome("retry", reason, retry_after=retry_after(headers), suspect=status == 500)
    return Outcome("hold", reason, retry_after=retry_after(headers))
