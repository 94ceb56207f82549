"""Group: events as the agent's queue stores them, a row per group.

A row holds the events' JSON end to end, their sizes, and, once events left it from the middle,
the places of those that remain (empty while the group is whole: 0, 1, ... in order). Sizes and
places are unsigned 32-bit little-endian integers. An event's id is its group's `seq` times
2**32 plus its place, so ids stay valid while other events of the group leave.
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GROUP_BYTES", "GROUP_EVENTS", "PLACE_BITS", "Group", "pack", "unpack"]

# A group row holds at most this many events or bytes (a batch reads at most a few rows).
GROUP_EVENTS = 1000
GROUP_BYTES = 1024 * 1024
PLACE_BITS = 32


def pack(numbers: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(numbers)}I", *numbers)


def unpack(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(blob) // 4}I", blob)


@dataclass(slots=True)
class Group:
    """One row: the places of its events in the group as first written, and their bodies."""

    seq: int
    places: Sequence[int]
    bodies: list[bytes]

    @classmethod
    def read(cls, seq: int, bodies: bytes, sizes: bytes, places: bytes) -> Group:
        ends = list(itertools.accumulate(unpack(sizes)))
        starts = [0, *ends[:-1]]
        return cls(
            seq,
            unpack(places) if places else range(len(ends)),
            [bodies[start:end] for start, end in zip(starts, ends, strict=True)],
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
                b"".join(self.bodies),
                pack([len(body) for body in self.bodies]),
                pack(self.places),
                self.seq,
            ),
        )
