"""The one differential oracle of decoding: a body gets the same fate through `decode_batch`
(the C path, for a batch or event by event) as through the thorough `decode` alone.

The tests use `both`; the fuzz target (fuzz/harness.c, see docs/development.md) and the
replay of its corpora (tests/ingest/test_fuzz_corpus.py) use `check`, which holds it under
tight limits too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logspace.decoder import decode
from logspace.elastic import bulk
from logspace.errors import LogspaceError
from logspace.events import DEFAULT_LIMITS, Limits
from logspace.ingest import transcoder
from logspace.ingest.decode import Decoded, decode_batch

from ..exactblock import exact_block

__all__ = ["NOW", "TIGHT", "Difference", "both", "check", "outcome"]

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

# Small enough for short fuzz inputs to reach every limit's edge.
TIGHT = Limits(
    max_events=3,
    max_properties=4,
    max_property_name_length=8,
    max_string_length=8,
    oldest_timestamp=datetime(2026, 6, 1, tzinfo=UTC),
    max_future=timedelta(hours=1),
)


def outcome(decoded: Any) -> Any:
    """What reaches Elasticsearch: each event's action and document, as JSON values; the
    fields used, and the values stored but not indexed."""
    if isinstance(decoded.events, bulk.Bulk):
        lines = decoded.events.body.splitlines()
    else:
        lines = bulk.encode(decoded.events, "space", "p").body.splitlines()
    return [orjson.loads(line) for line in lines], sorted(decoded.fields), decoded.unindexed


def both(body: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, Any]:
    """(fast, thorough): each an outcome, or the error body. On the way the C path also reads
    the body where a sanitizer sees a read past its end (`_read_where_overruns_show`)."""
    _read_where_overruns_show(body, limits)
    results = []
    for fast in (True, False):
        try:
            if fast:
                results.append(outcome(decode_batch(body, "space", limits, prefix="p", now=NOW)))
            else:
                results.append(outcome(Decoded(decode(body, limits, now=NOW))))
        except LogspaceError as error:
            results.append(error.body())
    return results[0], results[1]


class Difference(AssertionError):
    """The fast path gave what the thorough one would not, for this body."""


def check(body: bytes) -> None:
    """Everything one fuzz input must satisfy; any other exception escapes as it is."""
    for limits in (DEFAULT_LIMITS, TIGHT):
        fast, thorough = both(body, limits)
        if fast != thorough:
            raise Difference(
                f"{limits}\nbody: {body!r}\nfast:     {fast!r}\nthorough: {thorough!r}"
            )


def _read_where_overruns_show(body: bytes, limits: Limits) -> None:
    """The C path over a copy of the body in a malloc'd block of just its size, which must
    give what it gives for the body itself. A bytes object ends in a hidden NUL, which would
    hide a read of one byte too many from AddressSanitizer; a block of its own does not."""
    newest = NOW + limits.max_future
    with exact_block(body) as view:
        in_place = transcoder.transcode(view, "space", "p", limits, newest)
    if _lines(in_place) != _lines(transcoder.transcode(body, "space", "p", limits, newest)):
        raise Difference(f"the C path's answer depends on where the body lies: {body!r}")


def _lines(result: transcoder.Transcoded | None) -> Any:
    if result is None:
        return None
    return result.events.body, len(result), result.fields, result.unindexed
