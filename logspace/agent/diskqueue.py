"""DiskQueue: the agent's durable FIFO of encoded events, in one SQLite file.

Events are kept as the exact JSON bytes that will be sent, and removed only once HQ has
answered for them, so they survive agent restarts and HQ or Elasticsearch outages. Each `put`
is one committed transaction (WAL, `synchronous=NORMAL`): a crash of the process loses
nothing that `put` returned for; a power cut may lose the last moments. Senders do not call
`put` per event: their `Buffer` commits groups of events from a thread of its own.

A row holds a group of events (their JSON joined by commas, and their sizes), not one event.
The queue runs inside the application's process: a row per event cost about 5 us of SQLite per
event, and every statement step lets go of the GIL, which the application's busy thread then
has to win back; a row per group costs a few steps per batch. A batch (`peek_batch`) is whole
rows and at most one row's first events, as stored, and `ack_batch` deletes or trims those rows:
the common delivery touches no event one by one. The common group commit and the common ack
are one statement each (`queuefile.TEMP_SCHEMA`), and a batch of the rows just written is read
from memory (`freshrows.py`). Each event has an id, its group's `seq` times
2**32 plus its place in the group, for `ack` and `drop` of single events.

An older queue file is brought up to date when opened (`queuefile.py`), so an agent upgraded
in place ships what the previous version queued.

The queue is bounded by `max_bytes` of event JSON. When an event does not fit, the policy
decides: `drop-oldest` (the default) deletes the oldest events until it fits, keeping the
freshest data; `drop-newest` refuses the new event. Either way the dropped events are returned
to the caller, counted as dropped, and never block anything.

Counters `enqueued`, `sent` and `dropped` live in the same file, updated in the same
transactions as the events, so `enqueued == sent + dropped + queued` holds across restarts.
One process at a time owns a queue file (SQLite exclusive locking); a second gets `QueueInUse`.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import queuefile
from .config import FullPolicy
from .freshrows import FreshRows
from .group import GROUP_BYTES, GROUP_EVENTS, PLACE_BITS, Batch, Group, Part, pack, unpack

__all__ = ["DiskQueue", "QueueInUse", "QueueStats"]

Row = tuple[int, bytes]


class QueueInUse(RuntimeError):
    """Another process holds the queue file."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters since the queue file was created, and what it holds now.

    `buffered` is the part of `queued` still in a sender's memory, not yet committed to the
    file: what a crash of the process would lose (always 0 for the queue itself)."""

    enqueued: int
    sent: int
    dropped: int
    queued: int
    queued_bytes: int
    buffered: int = 0


class DiskQueue:
    """A FIFO of event bodies; thread-safe. `path=None` keeps it in memory (not durable)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        when_full: FullPolicy = "drop-oldest",
        group_events: int = GROUP_EVENTS,
        group_bytes: int = GROUP_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.when_full = when_full
        # A row's bounds: a sender's batch bounds, so that a batch never cuts a row in two.
        self.group_events = group_events
        self.group_bytes = group_bytes
        self._clock = clock
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every transaction below is explicit.
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path),
            timeout=0.5,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # Pages of 16 KiB (for a new file): a group of a few hundred events is a third
            # fewer page writes than with 4 KiB. SQLite builds that zero what is deleted
            # would rewrite every page a delivered group frees: FAST zeroes only what costs
            # no extra write (the events are in HQ by then; the file is the agent's own).
            self._db.execute("PRAGMA page_size=16384")
            self._db.execute("PRAGMA secure_delete=FAST")
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Takes the exclusive lock now, so a second owner fails here, not later.
            self._db.execute("BEGIN IMMEDIATE")
            old = queuefile.format_of(self._db)
            self._db.executescript(queuefile.SCHEMA)  # commits
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise QueueInUse(
                    f"the queue file {self.path} is in use by another process; "
                    "give each agent process its own queue name or directory"
                ) from None
            raise
        self._count = self._bytes = 0
        self._fresh = FreshRows()  # every change to a row below discards it there
        queuefile.bring_up_to_date(self._db, old, self._insert)
        # From here on, each group row inserted counts its events as enqueued (see TEMP_SCHEMA):
        # the common group commit is one statement, not four, and so is a common ack.
        self._db.executescript(queuefile.TEMP_SCHEMA)
        self._resync()
        self._closed = False

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, under the lock: committed at the end, or rolled back with
        the counts read again from the file."""
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._resync()
                raise

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(
        self, bodies: Sequence[bytes], *, dropped: int = 0, created: float | None = None
    ) -> list[bytes]:
        """Append events in one transaction; returns the events dropped to respect
        `max_bytes` (old or new). `dropped` counts events accepted before but dropped on their
        way here (by a sender's buffer): counted as enqueued and dropped in the same
        transaction. `created` (wall-clock seconds) defaults to now."""
        now = self._clock() if created is None else created
        if not dropped and self._one_row(bodies):
            # The common group: it fits, in one row, nothing dropped. The INSERT alone is the
            # transaction (autocommit), its trigger counting the events enqueued.
            with self._lock:
                self._check_open()
                try:
                    self._insert(list(bodies), now)
                except BaseException:
                    self._resync()
                    raise
            return []
        with self._writing():
            kept, spilled = self._admit(bodies)
            self._insert(kept, now)  # counted as enqueued by the trigger
            if self._bytes > self.max_bytes:  # drop-oldest: the oldest make room
                spilled.extend(self._remove_oldest(self._bytes - self.max_bytes))
            self._add_counter("enqueued", len(bodies) - len(kept) + dropped)
            self._add_counter("dropped", len(spilled) + dropped)
        return spilled

    def _one_row(self, bodies: Sequence[bytes]) -> bool:
        """Whether `bodies` fit the queue as they are, and make one row."""
        if not bodies or len(bodies) > self.group_events:
            return False
        size = sum(map(len, bodies))
        return self._bytes + size <= self.max_bytes and (
            size <= self.group_bytes or len(bodies) == 1
        )

    def _admit(self, bodies: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
        """The new events to insert and those refused at once: larger than the whole queue,
        or, with drop-newest, not fitting."""
        sizes = list(map(len, bodies))
        if self._bytes + sum(sizes) <= self.max_bytes:  # the common case: all fit
            return list(bodies), []
        kept: list[bytes] = []
        spilled: list[bytes] = []
        total = self._bytes
        newest = self.when_full == "drop-newest"
        for body, size in zip(bodies, sizes, strict=True):
            if size > self.max_bytes or (newest and total + size > self.max_bytes):
                spilled.append(body)
            else:
                kept.append(body)
                total += size
        return kept, spilled

    def _insert(self, bodies: list[bytes], now: float) -> None:
        """Rows of at most `group_events` events and `group_bytes` bytes (but one event)."""
        sizes = list(map(len, bodies))
        start = 0
        while start < len(bodies):
            end = min(len(bodies), start + self.group_events)
            ends = list(itertools.accumulate(sizes[start:end]))
            # As many as fit the bytes, at least one.
            end = start + max(1, bisect.bisect_right(ends, self.group_bytes))
            joined = b",".join(bodies[start:end])
            seq = self._db.execute(
                "INSERT INTO groups (created, bodies, sizes, places) VALUES (?, ?, ?, ?)",
                (now, joined, pack(sizes[start:end]), b""),
            ).lastrowid
            assert seq is not None
            self._fresh.add(seq, joined, tuple(sizes[start:end]))
            self._count += end - start
            self._bytes += sum(sizes[start:end])
            start = end

    def _groups(self) -> Iterable[Group]:
        for row in queuefile.rows(self._db):
            yield Group.read(*row)

    def _remove_oldest(self, at_least: int) -> list[bytes]:
        """Drop the oldest events until `at_least` bytes are free."""
        dropped: list[bytes] = []
        freed = 0
        for group in self._groups():
            taken = 0
            for body in group.bodies:
                if freed >= at_least:
                    break
                dropped.append(body)
                freed += len(body)
                taken += 1
            self._fresh.discard(group.seq)
            group.without(taken).write(self._db)
            if freed >= at_least:
                break
        self._count -= len(dropped)
        self._bytes -= freed
        return dropped

    def peek(self, max_count: int, max_bytes: int) -> list[Row]:
        """The oldest events as (id, body), at most `max_count` and `max_bytes` (but always
        one if any): whole groups, or the first events of the first group if it alone is
        over the bounds."""
        return self.peek_batch(max_count, max_bytes).rows

    def peek_batch(self, max_count: int, max_bytes: int) -> Batch:
        """The oldest events, as `peek` chooses them, in the rows' own bytes."""
        parts: list[Part] = []
        count = size = 0
        with self._lock:
            self._check_open()
            for seq, sizes, places_blob in self._row_sizes():
                places = unpack(places_blob) if places_blob else range(len(sizes))
                ends = list(itertools.accumulate(sizes, initial=size))
                # How many of the row fit: the count left, and the bytes (the first always).
                fit = min(max_count - count, bisect.bisect_right(ends, max_bytes) - 1)
                if fit >= len(sizes):
                    bodies = self._bodies_of(seq, places_blob, len(sizes))
                    parts.append(Part(seq, places, sizes, bodies, bytes(places_blob)))
                    count, size = count + fit, ends[-1]
                    if count < max_count:
                        continue
                elif not parts:
                    # A row alone over the bounds: its first events, their bytes up to the
                    # comma after the last (delivering them rewrites the row, so a batch
                    # never cuts a row it could leave for the next).
                    fit = max(fit, 1)
                    end = ends[fit] - size + fit - 1
                    bodies = self._bodies_of(seq, places_blob, len(sizes))
                    parts.append(Part(seq, places[:fit], sizes[:fit], bodies[:end]))
                break
        return Batch(parts)

    def _row_sizes(self) -> Iterator[tuple[int, tuple[int, ...], bytes]]:
        """The rows oldest first as (seq, sizes, places), from memory if they all are."""
        fresh = self._fresh.all_of(self._count)
        if fresh is not None:
            for seq, sizes in fresh:
                yield seq, sizes, b""
            return
        for seq, sizes_blob, places_blob in queuefile.row_sizes(self._db):
            yield seq, unpack(sizes_blob), places_blob

    def _bodies_of(self, seq: int, places: bytes, count: int) -> bytes:
        """The JSON of row `seq`, which has `places` and `count` events now."""
        fresh = self._fresh.bodies(seq, places, count)
        return queuefile.bodies_of(self._db, seq) if fresh is None else fresh

    def oldest_created(self) -> float | None:
        """Wall-clock time the oldest queued event was appended."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT created FROM groups ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def ack(self, ids: Sequence[int]) -> int:
        """Remove events HQ has stored; returns how many were still queued."""
        return self._remove(ids, "sent")

    def drop(self, ids: Sequence[int]) -> int:
        """Remove events that can never be stored; returns how many were still queued."""
        return self._remove(ids, "dropped")

    def ack_batch(self, batch: Batch) -> int:
        """`ack` every event of `batch`: its rows deleted or trimmed, none read."""
        if len(batch.parts) == 1 and batch.parts[0].whole is not None:
            # The common batch, one whole row: deleted and counted in one statement, if the
            # row is as read (two rows changed: the counter and the row; else none).
            part = batch.parts[0]
            with self._lock:
                self._check_open()
                before = self._db.total_changes
                try:
                    self._db.execute(
                        "INSERT INTO delivered VALUES (?, ?, ?)",
                        (part.seq, part.whole, len(part.places)),
                    )
                except BaseException:
                    self._resync()
                    raise
                if self._db.total_changes != before:
                    self._fresh.discard(part.seq)
                    return self._removed(len(part.places), sum(part.sizes))
        with self._writing():
            removed = sum(self._remove_part(part) for part in batch.parts)
            self._add_counter("sent", removed)
        return removed

    def _remove_part(self, part: Part) -> int:
        """Remove the events of `part`; how many were there."""
        self._fresh.discard(part.seq)
        return self._removed(*queuefile.cut_part(self._db, part))

    def _remove(self, ids: Sequence[int], counter: str) -> int:
        if not ids:
            return 0
        ordered = sorted(set(ids))
        with self._writing():
            removed = 0
            start = 0
            while start < len(ordered):
                seq = ordered[start] >> PLACE_BITS
                end = bisect.bisect_left(ordered, (seq + 1) << PLACE_BITS, start)
                removed += self._remove_from(seq, ordered[start:end])
                start = end
            # Events the full-queue policy already removed were counted as dropped then.
            self._add_counter(counter, removed)
        return removed

    def _remove_from(self, seq: int, ids: list[int]) -> int:
        """Remove the events `ids` (ascending) of group `seq`; how many were there."""
        self._fresh.discard(seq)
        return self._removed(*queuefile.cut_events(self._db, seq, ids))

    def _removed(self, count: int, size: int) -> int:
        self._count -= count
        self._bytes -= size
        return count

    def stats(self) -> QueueStats:
        with self._lock:
            self._check_open()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            return QueueStats(
                enqueued=counters["enqueued"],
                sent=counters["sent"],
                dropped=counters["dropped"],
                queued=self._count,
                queued_bytes=self._bytes,
            )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _add_counter(self, name: str, amount: int) -> None:
        if amount:
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (amount, name))

    def _resync(self) -> None:
        self._fresh.clear()  # a row rolled back may have left its seq to another
        count, size = self._db.execute(
            # A row's bytes are its events' and a comma between each two.
            "SELECT coalesce(sum(length(sizes)), 0) / 4, "
            "coalesce(sum(length(bodies) - length(sizes) / 4 + 1), 0) FROM groups"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the queue is closed")
