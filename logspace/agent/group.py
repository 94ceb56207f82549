"""Group: events as the agent's queue stores them, a row per group, and batches read from rows.

A row holds the events' JSON joined by commas (the inside of the JSON array HQ is sent), their
sizes, and, once events left it from the middle, the places of those that remain (empty while
the group is whole: 0, 1, ... in order). Sizes and places are unsigned 32-bit little-endian
integers. An event's id is its group's `seq` times 2**32 plus its place, so ids stay valid
while other events of the group leave.

A `Batch` is what the queue hands the shipper: whole rows and at most one row's first events,
each `Part` with its bytes as stored, so a request's body is the parts joined by commas and
nothing is cut into events on the way (only a refusal of some events does that, see `rows`).

Rows written before version 2 of the file held the events end to end, without the commas:
`add_commas` rewrites one such row (see `DiskQueue`).
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "GROUP_BYTES",
    "GROUP_EVENTS",
    "PLACE_BITS",
    "Batch",
    "Group",
    "Part",
    "add_commas",
    "pack",
    "unpack",
]

# A group row holds at most this many events or bytes (a batch reads at most a few rows).
GROUP_EVENTS = 1000
GROUP_BYTES = 1024 * 1024
PLACE_BITS = 32


def pack(numbers: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(numbers)}I", *numbers)


def unpack(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(blob) // 4}I", blob)


def _split(joined: bytes, sizes: Sequence[int], gap: int) -> list[bytes]:
    """The events of `joined`, `gap` bytes apart (1: a comma, 0: end to end)."""
    ends = list(itertools.accumulate(size + gap for size in sizes))
    starts = [0, *ends[:-1]]
    return [joined[start : start + size] for start, size in zip(starts, sizes, strict=True)]


def add_commas(bodies: bytes, sizes: bytes) -> bytes:
    """A row's events as written before version 2 (end to end), joined by commas."""
    return b",".join(_split(bodies, unpack(sizes), 0))


@dataclass(slots=True)
class Group:
    """One row: the places of its events in the group as first written, and their bodies."""

    seq: int
    places: Sequence[int]
    bodies: list[bytes]

    @classmethod
    def read(cls, seq: int, bodies: bytes, sizes: bytes, places: bytes) -> Group:
        numbers = unpack(sizes)
        return cls(
            seq, unpack(places) if places else range(len(numbers)), _split(bodies, numbers, 1)
        )

    @property
    def ids(self) -> list[int]:
        base = self.seq << PLACE_BITS
        return [base | place for place in self.places]

    def without(self, count: int) -> Group:
        """The group without its oldest `count` events."""
        return Group(self.seq, self.places[count:], self.bodies[count:])

    def write(self, db: sqlite3.Connection) -> None:
        """Store what is left of the group (nothing: delete its row)."""
        if not self.bodies:
            db.execute("DELETE FROM groups WHERE seq = ?", (self.seq,))
            return
        db.execute(
            "UPDATE groups SET bodies = ?, sizes = ?, places = ? WHERE seq = ?",
            (
                b",".join(self.bodies),
                pack([len(body) for body in self.bodies]),
                pack(self.places),
                self.seq,
            ),
        )


@dataclass(frozen=True, slots=True)
class Part:
    """A row's events in a batch, the row's first `len(places)` when read: their places, sizes
    and JSON joined by commas."""

    seq: int
    places: Sequence[int]
    sizes: Sequence[int]
    body: bytes
    # The row's places as read (b"": the group is whole), when the part is the whole row.
    whole: bytes | None = None

    @property
    def ids(self) -> list[int]:
        base = self.seq << PLACE_BITS
        return [base | place for place in self.places]


@dataclass(frozen=True, slots=True)
class Batch:
    """Queued events to send together, oldest first."""

    parts: list[Part]

    def __len__(self) -> int:
        return sum(len(part.places) for part in self.parts)

    @property
    def array(self) -> bytes:
        """The JSON array of the events, as a request's body: written in one copy (a batch of
        request events is a few hundred kilobytes)."""
        pieces = [b"["]
        for part in self.parts:
            pieces += (part.body, b",")
        if self.parts:
            pieces.pop()
        pieces.append(b"]")
        return b"".join(pieces)

    @property
    def size(self) -> int:
        """The events' bytes, without the commas."""
        return sum(sum(part.sizes) for part in self.parts)

    @property
    def rows(self) -> list[tuple[int, bytes]]:
        """Each event as (id, body), cut apart (for refusals of some events, and tests)."""
        return [
            row
            for part in self.parts
            for row in zip(part.ids, _split(part.body, part.sizes, 1), strict=True)
        ]
