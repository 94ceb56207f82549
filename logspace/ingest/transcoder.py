"""The common batch, checked and written as its `_bulk` body in one pass of C (`fastpath`):
the fast path of `ingest.decode.decode_batch`.

Agents mostly send events whose every value already has its stored form, or one a single
pass can write: canonical UTC timestamps, no nulls; the original Java agents' arrays of one
value (unwrapped), their bare NaN and Infinity (quoted), their empty marker (left out). For
such a batch `fastpath/_transcode.c` checks every rule of the thorough decoder (`logspace.decoder`)
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

from collections.abc import Collection
from datetime import datetime

import orjson

from logspace import fastpath
from logspace.elastic import bulk
from logspace.events import Limits, Unindexed
from logspace.ingest.budget import Use, uses_in
from logspace.partitions import CODES, Partition

__all__ = ["AVAILABLE", "Transcoded", "transcode"]

AVAILABLE = fastpath.AVAILABLE


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
    body: bytes | memoryview,
    space: str,
    prefix: str,
    limits: Limits,
    newest: datetime,
    partition: Partition = "month",
) -> Transcoded | None:
    """The batch as `_bulk` lines for `<prefix>-<space>-<period>`, or None when the thorough
    decoder must look at it."""
    written = fastpath.write(
        body,
        bulk.action_start(prefix, space),
        bulk.document_end(space),
        limits,
        newest,
        CODES[partition],
    )
    if written is None:
        return None
    unindexed = Unindexed(written.non_finite, written.long_strings)
    return Transcoded(bulk.Bulk(written.lines, written.events), written.fields, unindexed)
