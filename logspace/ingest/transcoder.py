"""The common batch, checked and written as its `_bulk` body in one pass of C: the fast path
of `ingest.decode.decode_batch`.

Agents mostly send events whose every value already has its stored form, or one a single
pass can write: canonical UTC timestamps, no nulls; the original Java agents' arrays of one
value (unwrapped), their bare NaN and Infinity (quoted), their empty marker (left out). For
such a batch `_transcode.c` checks every rule of the thorough decoder (`logspace.decoder`)
while it copies each event's members, compacted and so normalised, into the document line
(plus `space`) and writes the action line beside it, creating no Python object per event or
value. That matters because HQ shares its CPU with Elasticsearch: see bench/results.md.
Whatever it does not accept (a rule broken, or just an unusual form such as a `\\u` escape
in a property name) goes to the thorough decoder, which normalises or explains it;
tests/ingest/test_transcoder.py holds the two to one result, and `make fuzz` searches for
inputs where they differ.

The stored documents are the events' own JSON, so their keys keep the sender's order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

import msgspec
import orjson

from logspace.elastic import bulk
from logspace.events import Limits, Unindexed, instant_bound
from logspace.ingest.budget import Use, uses_in
from logspace.partitions import CODES, Partition

__all__ = ["AVAILABLE", "Transcoded", "plain_events", "transcode"]

_transcode: Callable[..., tuple[bytes, int, set[str], int, int, int] | None] | None
try:
    from logspace.ingest._transcode import transcode as _compiled

    _transcode = _compiled
except ImportError:  # pragma: no cover - no C compiler: the thorough decoder does it all
    _transcode = None

# False only where the package was installed without a C compiler (see setup.py).
AVAILABLE = _transcode is not None


class Transcoded:
    """A batch accepted in C: as `events`, its `_bulk` lines; the property fields it uses."""

    def __init__(self, lines: bulk.Bulk, fields: set[str], unindexed: Unindexed) -> None:
        self.events = lines
        self.fields = fields
        self.unindexed = unindexed

    def uses(self, fields: Collection[str]) -> list[Use]:
        """In batch order, read back from the documents (only error answers need this)."""
        documents = [orjson.loads(self.events[i].partition(b"\n")[2]) for i in range(len(self))]
        return uses_in(documents, fields)

    def __len__(self) -> int:
        return len(self.events)


def transcode(
    body: bytes,
    space: str,
    prefix: str,
    limits: Limits,
    newest: datetime,
    partition: Partition = "month",
) -> Transcoded | None:
    """The batch as `_bulk` lines for `<prefix>-<space>-<period>`, or None when one of the
    slower paths must look at it."""
    if _transcode is None:  # pragma: no cover - see AVAILABLE
        return None
    result = _transcode(
        body,
        bulk.action_start(prefix, space),
        bulk.document_end(space),
        *_rules(limits, newest),
        CODES[partition],
    )
    if result is None:
        return None
    lines, count, fields, non_finite, long_strings, _ = result
    return Transcoded(bulk.Bulk(lines, count), fields, Unindexed(non_finite, long_strings))


_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def plain_events(body: bytes, limits: Limits, newest: datetime) -> list[bool] | None:
    """For each event of a batch the C path did not take as a whole, whether it would take
    that event alone as it is (no array to unwrap, no NaN to quote, no empty text to leave
    out): then the event breaks no rule and needs no normalising, so `decode` need not check
    it in Python. A batch with a few bad events is then about as cheap as a
    good one. None when the body is no JSON array (or the extension is missing)."""
    if _transcode is None:  # pragma: no cover - see AVAILABLE
        return None
    try:
        raws = _RAW_ARRAY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    # The lines written are not wanted, only the verdict.
    arguments = (b"", b"", *_rules(limits, newest))
    transcode_ = _transcode
    return [_as_it_is(transcode_(b"[%s]" % raw, *arguments)) for raw in raws]


def _as_it_is(result: tuple[bytes, int, set[str], int, int, int] | None) -> bool:
    return result is not None and result[5] == 0


def _rules(limits: Limits, newest: datetime) -> tuple[int, int, int, int, int, bytes, bytes]:
    """The limits as `_transcode.transcode` takes them, the timestamp window as canonical
    instants (which compare as strings do)."""
    return (
        limits.max_events,
        limits.max_properties,
        limits.max_fields,
        limits.max_property_name_length,
        limits.max_string_length,
        instant_bound(limits.oldest_timestamp, up=True).encode(),
        instant_bound(newest).encode(),
    )
