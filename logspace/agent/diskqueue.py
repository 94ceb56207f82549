"""DiskQueue: the agent's durable FIFO of encoded events, in one SQLite file.

Events are appended as the exact JSON bytes that will be sent, and removed only once HQ has
answered for them, so they survive agent restarts and HQ or Elasticsearch outages. Each `put`
is one committed transaction (WAL, `synchronous=NORMAL`): a crash of the process loses
nothing that `put` returned for; a power cut may lose the last moments. Senders do not call
`put` per event: their `Buffer` commits groups of events from a thread of its own.

The queue is bounded by `max_bytes` of event JSON. When an event does not fit, the policy
decides: `drop-oldest` (the default) deletes the oldest events until it fits, keeping the
freshest data; `drop-newest` refuses the new event. Either way the dropped events are returned
to the caller, counted as dropped, and never block anything.

Counters `enqueued`, `sent` and `dropped` live in the same file, updated in the same
transactions as the events, so `enqueued == sent + dropped + queued` holds across restarts.
One process at a time owns a queue file (SQLite exclusive locking); a second gets `QueueInUse`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import FullPolicy

__all__ = ["DiskQueue", "QueueInUse", "QueueStats"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('enqueued', 0), ('sent', 0), ('dropped', 0);
"""

Row = tuple[int, bytes]

# Sequence numbers per statement when removing events (SQLite allows at least 999 parameters).
_CHUNK = 500


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.when_full = when_full
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
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Takes the exclusive lock now, so a second owner fails here, not later.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executescript(_SCHEMA)  # commits
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise QueueInUse(
                    f"the queue file {self.path} is in use by another process; "
                    "give each agent process its own queue name or directory"
                ) from None
            raise
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM events"
        ).fetchone()
        self._closed = False

    def __len__(self) -> int:
        return int(self._count)

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    def put(
        self, bodies: Sequence[bytes], *, dropped: int = 0, created: float | None = None
    ) -> list[bytes]:
        """Append events in one transaction; returns the events dropped to respect
        `max_bytes` (old or new). `dropped` counts events accepted before but dropped on their
        way here (by a sender's buffer): counted as enqueued and dropped in the same
        transaction. `created` (wall-clock seconds) defaults to now."""
        now = self._clock() if created is None else created
        spilled: list[bytes] = []
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                size = sum(len(body) for body in bodies)
                if self._bytes + size <= self.max_bytes:
                    # The common case, in one statement: nothing has to make room.
                    self._db.executemany(
                        "INSERT INTO events (body, created) VALUES (?, ?)",
                        [(body, now) for body in bodies],
                    )
                    self._count += len(bodies)
                    self._bytes += size
                else:
                    for body in bodies:
                        spilled.extend(self._put_one(body, now))
                self._add_counter("enqueued", len(bodies) + dropped)
                self._add_counter("dropped", len(spilled) + dropped)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._resync()
                raise
        return spilled

    def _put_one(self, body: bytes, now: float) -> list[bytes]:
        if len(body) > self.max_bytes:
            return [body]
        if self._bytes + len(body) > self.max_bytes:
            if self.when_full == "drop-newest":
                return [body]
            dropped = self._drop_oldest(self._bytes + len(body) - self.max_bytes)
        else:
            dropped = []
        self._db.execute("INSERT INTO events (body, created) VALUES (?, ?)", (body, now))
        self._count += 1
        self._bytes += len(body)
        return dropped

    def _drop_oldest(self, at_least: int) -> list[bytes]:
        freed = 0
        rows: list[Row] = []
        for seq, body in self._db.execute("SELECT seq, body FROM events ORDER BY seq"):
            rows.append((seq, body))
            freed += len(body)
            if freed >= at_least:
                break
        self._db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq, _ in rows])
        self._count -= len(rows)
        self._bytes -= freed
        return [body for _, body in rows]

    def peek(self, max_count: int, max_bytes: int) -> list[Row]:
        """The oldest events, at most `max_count` and `max_bytes` (but always one if any)."""
        rows: list[Row] = []
        size = 0
        with self._lock:
            self._check_open()
            cursor = self._db.execute(
                "SELECT seq, body FROM events ORDER BY seq LIMIT ?", (max_count,)
            )
            for seq, body in cursor:
                if rows and size + len(body) > max_bytes:
                    break
                rows.append((seq, body))
                size += len(body)
        return rows

    def oldest_created(self) -> float | None:
        """Wall-clock time the oldest queued event was appended."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def ack(self, seqs: Sequence[int]) -> int:
        """Remove events HQ has stored; returns how many were still queued."""
        return self._remove(seqs, "sent")

    def drop(self, seqs: Sequence[int]) -> int:
        """Remove events that can never be stored; returns how many were still queued."""
        return self._remove(seqs, "dropped")

    def _remove(self, seqs: Sequence[int], counter: str) -> int:
        if not seqs:
            return 0
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = 0
                for start in range(0, len(seqs), _CHUNK):
                    chunk = seqs[start : start + _CHUNK]
                    where = f"WHERE seq IN ({','.join('?' * len(chunk))})"
                    count, size = self._db.execute(
                        f"SELECT count(*), coalesce(sum(length(body)), 0) FROM events {where}",  # noqa: S608 - only placeholders
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM events {where}", chunk)  # noqa: S608 - as above
                    removed += count
                    self._bytes -= size
                self._count -= removed
                # Events the full-queue policy already removed were counted as dropped then.
                self._add_counter(counter, removed)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._resync()
                raise
        return removed

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
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM events"
        ).fetchone()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the queue is closed")
