"""QueueFile: the tables of the agent's queue file, its format's versions, and how a file an
older agent wrote is brought up to date when opened, so an agent upgraded in place ships what
the previous version queued.

    before groups   a row per event (table `events`)
    version 1       a row per group, its events' JSON end to end (`user_version` 0)
    version 2       a row per group, its events' JSON joined by commas (see `group.py`)

Each step is one transaction: a crash in the middle leaves the file as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .group import GROUP_EVENTS, add_commas

__all__ = ["SCHEMA", "VERSION", "FileFormat", "bring_up_to_date", "format_of"]

# A row per group of events, as group.py reads and writes it.
SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    bodies BLOB NOT NULL,
    sizes BLOB NOT NULL,
    places BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('enqueued', 0), ('sent', 0), ('dropped', 0);
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
    """Version 1 -> 2: each group's events joined by commas."""
    if had_groups:
        for seq, bodies, sizes in db.execute("SELECT seq, bodies, sizes FROM groups").fetchall():
            db.execute(
                "UPDATE groups SET bodies = ? WHERE seq = ?", (add_commas(bodies, sizes), seq)
            )
    db.execute(f"PRAGMA user_version = {VERSION}")


def _adopt_event_rows(db: sqlite3.Connection, insert: Insert) -> None:
    """Before groups -> groups: the events moved into group rows, in order."""
    rows = db.execute("SELECT body, created FROM events ORDER BY seq").fetchall()
    for start in range(0, len(rows), GROUP_EVENTS):
        chunk = rows[start : start + GROUP_EVENTS]
        insert([bytes(body) for body, _ in chunk], chunk[0][1])
    db.execute("DROP TABLE events")
