"""QueueFile: the tables of the agent's queue file, reading its rows and cutting events out of
them, its format's versions, and how a file an older agent wrote is brought up to date when
opened, so an agent upgraded in place ships what the previous version queued.

    before groups   a row per event (table `events`)
    version 1       a row per group, its events' JSON end to end (`user_version` 0)
    version 2       a row per group, its events' JSON joined by commas (see `group.py`),
                    stored last in the row: SQLite reads a row's columns in order, and the
                    JSON of a large group spans many pages that reading its sizes would walk

Each step is one transaction: a crash in the middle leaves the file as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .group import GROUP_EVENTS, PLACE_BITS, Group, Part, add_commas, pack, unpack

__all__ = [
    "SCHEMA",
    "TEMP_SCHEMA",
    "VERSION",
    "FileFormat",
    "bodies_of",
    "bring_up_to_date",
    "cut_events",
    "cut_part",
    "format_of",
    "row_sizes",
    "rows",
]

# A row per group of events, as group.py reads and writes it.
_GROUPS = """(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    sizes BLOB NOT NULL,
    places BLOB NOT NULL,
    bodies BLOB NOT NULL
)"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS groups {_GROUPS};
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('enqueued', 0), ('sent', 0), ('dropped', 0);
"""  # noqa: S608 - constant text

# The connection's own statements (TEMP: not in the file, so an older agent opening it later
# meets nothing new), letting the two commonest writes be one statement each, a transaction
# of its own in autocommit mode:
# - each group row inserted counts its events as enqueued;
# - `INSERT INTO delivered` deletes a whole row HQ stored, if it still holds `count` events
#   with the `places` it was read with, and counts them as sent (else it changes nothing).
# A statement lets go of the GIL a few times, and under load each time costs a hand-off
# with the application's thread.
TEMP_SCHEMA = """
CREATE TEMP TRIGGER IF NOT EXISTS count_inserted AFTER INSERT ON groups BEGIN
    UPDATE counters SET value = value + length(NEW.sizes) / 4 WHERE name = 'enqueued';
END;
CREATE TEMP VIEW IF NOT EXISTS delivered (seq, places, count) AS SELECT 0, x'', 0 WHERE 0;
CREATE TEMP TRIGGER IF NOT EXISTS delete_delivered INSTEAD OF INSERT ON delivered BEGIN
    UPDATE counters SET value = value + NEW.count WHERE name = 'sent' AND EXISTS (
        SELECT 1 FROM groups
        WHERE seq = NEW.seq AND places = NEW.places AND length(sizes) = 4 * NEW.count
    );
    DELETE FROM groups
    WHERE seq = NEW.seq AND places = NEW.places AND length(sizes) = 4 * NEW.count;
END;
"""

# The rows' format this version writes.
VERSION = 2

# Stores events as a group row: their JSON and when they were queued.
Insert = Callable[[list[bytes], float], None]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """What a file held when opened, before `SCHEMA` created what was missing."""

    version: int
    groups: bool
    events: bool


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(found, (name,)).fetchone() is not None


def format_of(db: sqlite3.Connection) -> FileFormat:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    return FileFormat(int(version), _has_table(db, "groups"), _has_table(db, "events"))


def rows(db: sqlite3.Connection) -> Iterator[tuple[int, bytes, bytes, bytes]]:
    """The groups' rows oldest first as (seq, bodies, sizes, places), one statement each (no
    cursor stays open meanwhile)."""
    for seq, _, _ in row_sizes(db):
        yield db.execute(
            "SELECT seq, bodies, sizes, places FROM groups WHERE seq = ?", (seq,)
        ).fetchone()


def row_sizes(db: sqlite3.Connection) -> Iterator[tuple[int, bytes, bytes]]:
    """`rows` without their events' JSON, (seq, sizes, places): a batch reads the JSON of the
    rows it takes only."""
    seq = -1
    while True:
        row = db.execute(
            "SELECT seq, sizes, places FROM groups WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)
        ).fetchone()
        if row is None:
            return
        seq = row[0]
        yield row


def bodies_of(db: sqlite3.Connection, seq: int) -> bytes:
    """The JSON of a group's events."""
    (bodies,) = db.execute("SELECT bodies FROM groups WHERE seq = ?", (seq,)).fetchone()
    return bytes(bodies)


def cut_part(db: sqlite3.Connection, part: Part) -> tuple[int, int]:
    """Remove the events of `part` from its row (no counter changes); how many were still
    there, and their bytes."""
    taken = len(part.places)
    if part.whole is not None:
        # A whole row, deleted if it is still as read (the same places, as many events):
        # one statement, none reading the row first.
        deleted = db.execute(
            "DELETE FROM groups WHERE seq = ? AND places = ? AND length(sizes) = ?",
            (part.seq, part.whole, 4 * taken),
        ).rowcount
        if deleted:
            return taken, sum(part.sizes)
    row = db.execute("SELECT sizes, places FROM groups WHERE seq = ?", (part.seq,)).fetchone()
    if row is None:
        return 0, 0
    sizes = unpack(row[0])
    places = unpack(row[1]) if row[1] else range(len(sizes))
    if places[:taken] != part.places:
        # The row changed since it was read (the full-queue policy took its oldest, ...).
        return cut_events(db, part.seq, part.ids)
    if taken == len(places):
        db.execute("DELETE FROM groups WHERE seq = ?", (part.seq,))
    else:
        # The row's first events: cut them and their commas off the front.
        db.execute(
            "UPDATE groups SET bodies = substr(bodies, ?), sizes = substr(sizes, ?), "
            "places = ? WHERE seq = ?",
            (sum(part.sizes) + taken + 1, 4 * taken + 1, pack(places[taken:]), part.seq),
        )
    return taken, sum(part.sizes)


def cut_events(db: sqlite3.Connection, seq: int, ids: list[int]) -> tuple[int, int]:
    """Remove the events `ids` (ascending) of group `seq` (no counter changes); how many were
    still there, and their bytes."""
    row = db.execute("SELECT sizes, places FROM groups WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return 0, 0
    sizes = unpack(row[0])
    places = unpack(row[1]) if row[1] else range(len(sizes))
    base = seq << PLACE_BITS
    if ids == [base | place for place in places]:
        # The common case: the whole group was delivered, no body needs reading.
        db.execute("DELETE FROM groups WHERE seq = ?", (seq,))
        return len(sizes), sum(sizes)
    gone = {event_id - base for event_id in ids}
    leaving = [size for place, size in zip(places, sizes, strict=True) if place in gone]
    if leaving:
        group = Group.read(seq, bodies_of(db, seq), row[0], row[1])
        staying = [i for i, place in enumerate(group.places) if place not in gone]
        Group(seq, [group.places[i] for i in staying], [group.bodies[i] for i in staying]).write(db)
    return len(leaving), sum(leaving)


def bring_up_to_date(db: sqlite3.Connection, old: FileFormat, insert: Insert) -> None:
    """Rewrite what `old` says is of an older format (in autocommit mode, with `SCHEMA` in
    place); `insert` stores events as the queue does."""
    if old.version < VERSION:
        _in_transaction(db, lambda: _add_commas(db, old.groups))
    if old.events:
        _in_transaction(db, lambda: _adopt_event_rows(db, insert))


def _in_transaction(db: sqlite3.Connection, work: Callable[[], None]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        work()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _add_commas(db: sqlite3.Connection, had_groups: bool) -> None:
    """Version 1 -> 2: each group's events joined by commas, in a table with them last."""
    if had_groups:
        db.execute(f"CREATE TABLE groups_2 {_GROUPS}")
        old = "SELECT seq, created, sizes, places, bodies FROM groups ORDER BY seq"
        for seq, created, sizes, places, bodies in db.execute(old).fetchall():
            db.execute(
                "INSERT INTO groups_2 (seq, created, sizes, places, bodies) VALUES (?, ?, ?, ?, ?)",
                (seq, created, sizes, places, add_commas(bodies, sizes)),
            )
        # Numbers of groups that left stay unused, as AUTOINCREMENT promised.
        last = db.execute("SELECT max(seq) FROM sqlite_sequence WHERE name = 'groups'").fetchone()
        db.execute("DROP TABLE groups")
        db.execute("ALTER TABLE groups_2 RENAME TO groups")
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'groups'")
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('groups', ?)", (last[0] or 0,))
    db.execute(f"PRAGMA user_version = {VERSION}")


def _adopt_event_rows(db: sqlite3.Connection, insert: Insert) -> None:
    """Before groups -> groups: the events moved into group rows, in order."""
    rows = db.execute("SELECT body, created FROM events ORDER BY seq").fetchall()
    for start in range(0, len(rows), GROUP_EVENTS):
        chunk = rows[start : start + GROUP_EVENTS]
        insert([bytes(body) for body, _ in chunk], chunk[0][1])
    db.execute("DROP TABLE events")
