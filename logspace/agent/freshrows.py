"""FreshRows: the group rows a queue just wrote, kept in memory for the sender's next batch.

Under load the sender's next batch is the row the buffer's thread just committed; reading it
back from the file costs a few statements (each lets go of the GIL, which the application's
busy thread then hands back) and a copy of a few hundred kilobytes. So the queue keeps its last
rows as written, their JSON and sizes, and takes out every row it changes in the file after.
What is kept is exactly the file's rows that are still as written: a row's JSON is taken from
here only while the row is whole (no places) and as long, and when these rows hold every event
queued, no other row holds any (rows are never empty), so a batch is read from here alone.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["FreshRows"]

# How many of the rows last written are kept (the sender takes the oldest queued first).
KEPT_ROWS = 4


class FreshRows:
    def __init__(self) -> None:
        self._rows: dict[int, tuple[bytes, tuple[int, ...]]] = {}

    def add(self, seq: int, joined: bytes, sizes: tuple[int, ...]) -> None:
        self._rows[seq] = (joined, sizes)
        if len(self._rows) > KEPT_ROWS:
            del self._rows[next(iter(self._rows))]

    def discard(self, seq: int) -> None:
        """Row `seq` changes in the file (or leaves it)."""
        self._rows.pop(seq, None)

    def clear(self) -> None:
        """A transaction was rolled back: a row it wrote may leave its seq to another."""
        self._rows.clear()

    def all_of(self, count: int) -> Iterator[tuple[int, tuple[int, ...]]] | None:
        """Every row queued as (seq, sizes), oldest first, if these hold all `count` events."""
        if not self._rows or sum(len(sizes) for _, sizes in self._rows.values()) != count:
            return None
        return ((seq, sizes) for seq, (_, sizes) in list(self._rows.items()))

    def bodies(self, seq: int, places: bytes, count: int) -> bytes | None:
        """The JSON of row `seq`, which has `places` and `count` events in the file now."""
        row = self._rows.get(seq)
        if row is None or places or len(row[1]) != count:
            return None
        return row[0]
