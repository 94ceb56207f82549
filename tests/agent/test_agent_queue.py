"""The durable queue: order, bounds, counters, restarts and a single owner."""

from __future__ import annotations

import random
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logspace.agent import DiskQueue


def test_events_come_out_in_order_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = DiskQueue(path)
    queue.put([b"1", b"22", b"333"])
    queue.close()

    reopened = DiskQueue(path)

    assert [body for _, body in reopened.peek(10, 1000)] == [b"1", b"22", b"333"]
    assert (len(reopened), reopened.size_bytes) == (3, 6)


def test_peek_stops_at_the_count_or_byte_limit_but_returns_at_least_one(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3")
    queue.put([b"aaaa", b"bbbb", b"cccc"])

    assert [b for _, b in queue.peek(2, 1000)] == [b"aaaa", b"bbbb"]
    assert [b for _, b in queue.peek(10, 9)] == [b"aaaa", b"bbbb"]
    assert [b for _, b in queue.peek(10, 1)] == [b"aaaa"]


def test_counters_add_up_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = DiskQueue(path)
    queue.put([b"a", b"b", b"c", b"d"])
    (one, _), (two, _), (three, _) = queue.peek(3, 100)
    queue.ack([one, two])
    queue.drop([three])
    queue.close()

    stats = DiskQueue(path).stats()

    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (4, 2, 1, 1)
    assert stats.enqueued == stats.sent + stats.dropped + stats.queued


def test_acking_events_that_are_gone_counts_nothing(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3")
    queue.put([b"a"])
    [(seq, _)] = queue.peek(1, 10)

    assert queue.ack([seq]) == 1
    assert queue.ack([seq]) == 0
    assert queue.stats().sent == 1


def test_when_full_the_oldest_events_make_room_by_default(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=10)
    queue.put([b"1111", b"2222"])

    dropped = queue.put([b"3333"])

    assert dropped == [b"1111"]
    assert [b for _, b in queue.peek(10, 100)] == [b"2222", b"3333"]
    assert queue.stats().dropped == 1
    assert queue.size_bytes == 8


def test_drop_newest_refuses_what_does_not_fit(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=10, when_full="drop-newest")
    queue.put([b"1111", b"2222"])

    assert queue.put([b"3333", b"44"]) == [b"3333"]
    assert [b for _, b in queue.peek(10, 100)] == [b"1111", b"2222", b"44"]


def test_an_event_larger_than_the_whole_queue_is_dropped(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=10)
    queue.put([b"1111"])

    assert queue.put([b"x" * 11]) == [b"x" * 11]
    assert len(queue) == 1


def test_a_second_process_cannot_use_the_same_queue_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = DiskQueue(path)
    queue.put([b"a"])

    code = "import sys; from logspace.agent import DiskQueue; DiskQueue(sys.argv[1])"
    other = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )

    assert other.returncode != 0
    assert "is in use by another process" in other.stderr
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue.put([b"b"])
    DiskQueue(path).close()  # free again once the owner closed it


def test_the_queue_in_memory_works_the_same() -> None:
    queue = DiskQueue(None, max_bytes=5)
    queue.put([b"123", b"456"])
    assert [b for _, b in queue.peek(5, 100)] == [b"456"]
    assert queue.stats().dropped == 1


def test_a_batch_spans_groups_and_events_leave_from_the_middle_of_a_group(
    tmp_path: Path,
) -> None:
    """Groups are how the queue stores events, never what it returns: ids stay valid when
    other events of their group left before them (e.g. a 400 dropped one of a batch)."""
    path = tmp_path / "q.sqlite3"
    queue = DiskQueue(path)
    queue.put([b"a1", b"a2", b"a3"])
    queue.put([b"b1", b"b2"])
    rows = queue.peek(10, 1000)
    assert [body for _, body in rows] == [b"a1", b"a2", b"a3", b"b1", b"b2"]
    ids = {body: event_id for event_id, body in rows}

    assert queue.drop([ids[b"a2"], ids[b"b1"]]) == 2
    queue.close()
    reopened = DiskQueue(path)

    rows = reopened.peek(10, 1000)
    assert rows == [(ids[b"a1"], b"a1"), (ids[b"a3"], b"a3"), (ids[b"b2"], b"b2")]
    assert reopened.ack([ids[b"a1"], ids[b"a2"], ids[b"a3"]]) == 2  # a2 was gone already
    assert [body for _, body in reopened.peek(10, 1000)] == [b"b2"]
    stats = reopened.stats()
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (5, 2, 2, 1)
    assert reopened.size_bytes == 2


def test_drop_oldest_takes_part_of_a_group_and_keeps_the_rest(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=12)
    queue.put([b"1111", b"2222", b"3333"])

    assert queue.put([b"44", b"55"]) == [b"1111"]
    assert [body for _, body in queue.peek(10, 100)] == [b"2222", b"3333", b"44", b"55"]
    assert (len(queue), queue.size_bytes) == (4, 12)


def test_a_batch_takes_whole_groups_within_its_count_and_bytes(tmp_path: Path) -> None:
    """A group is cut only when it alone is over the bounds: delivering part of a group
    rewrites its row, so a batch leaves a group that does not fit for the next batch."""
    queue = DiskQueue(tmp_path / "q.sqlite3")
    queue.put([b"aa", b"bb"])
    queue.put([b"cc", b"dd"])

    assert [b for _, b in queue.peek(4, 1000)] == [b"aa", b"bb", b"cc", b"dd"]
    assert [b for _, b in queue.peek(3, 1000)] == [b"aa", b"bb"]
    assert [b for _, b in queue.peek(10, 6)] == [b"aa", b"bb"]
    assert [b for _, b in queue.peek(1, 1000)] == [b"aa"]
    assert [b for _, b in queue.peek(10, 3)] == [b"aa"]


def test_a_large_put_is_stored_in_several_groups_and_comes_out_whole(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3")
    bodies = [b"%05d" % n for n in range(2500)]
    queue.put(bodies)

    out: list[bytes] = []
    while rows := queue.peek(700, 1_000_000):
        out.extend(body for _, body in rows)
        queue.ack([event_id for event_id, _ in rows])
    assert out == bodies
    assert queue.stats().sent == 2500


def test_a_queue_file_with_a_row_per_event_is_taken_over_in_order(tmp_path: Path) -> None:
    """Queue files written before groups (one row per event) keep their events and counters."""
    path = tmp_path / "q.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,
                             created REAL NOT NULL);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('enqueued', 5), ('sent', 2), ('dropped', 0);
        INSERT INTO events (body, created) VALUES (x'6331', 1.5), (x'6332', 2.5), (x'6333', 3.5);
        """
    )
    old.close()

    queue = DiskQueue(path)

    assert [body for _, body in queue.peek(10, 100)] == [b"c1", b"c2", b"c3"]
    assert queue.oldest_created() == 1.5
    stats = queue.stats()
    assert (stats.enqueued, stats.sent, stats.queued) == (5, 2, 3)


def write_version_1_queue(path: Path) -> None:
    """A queue file as the agent wrote it before version 2: a row per group, its events end
    to end (no commas), `user_version` 0."""
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
                             bodies BLOB NOT NULL, sizes BLOB NOT NULL, places BLOB NOT NULL);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('enqueued', 9), ('sent', 4), ('dropped', 1);
        """
    )
    sizes = struct.pack("<3I", 2, 3, 1)
    old.execute(
        "INSERT INTO groups (created, bodies, sizes, places) VALUES (1.5, ?, ?, ?)",
        (b"{}[1]7", sizes, b""),
    )
    # A group some of whose events left from the middle: places 0 and 2 remain.
    old.execute(
        "INSERT INTO groups (created, bodies, sizes, places) VALUES (2.5, ?, ?, ?)",
        (b'"a""ccc"', struct.pack("<2I", 3, 5), struct.pack("<2I", 0, 2)),
    )
    old.commit()
    old.close()


def test_a_queue_file_of_version_1_keeps_its_events_ids_and_counters(tmp_path: Path) -> None:
    """An agent upgraded in place ships what the previous version queued: the groups of a
    version 1 file (events end to end) are rewritten once, in the new format."""
    path = tmp_path / "q.sqlite3"
    write_version_1_queue(path)

    queue = DiskQueue(path)

    rows = queue.peek(10, 100)
    assert [body for _, body in rows] == [b"{}", b"[1]", b"7", b'"a"', b'"ccc"']
    assert queue.peek_batch(10, 100).array == b'[{},[1],7,"a","ccc"]'
    assert (len(queue), queue.size_bytes) == (5, 14)
    stats = queue.stats()
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (9, 4, 1, 5)
    assert queue.oldest_created() == 1.5
    assert queue.drop([rows[4][0]]) == 1
    queue.close()

    reopened = DiskQueue(path)  # now version 2: nothing is rewritten again
    assert [body for _, body in reopened.peek(10, 100)] == [b"{}", b"[1]", b"7", b'"a"']
    assert reopened.ack([event_id for event_id, _ in rows[:4]]) == 4
    stats = reopened.stats()
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (9, 8, 2, 0)
    reopened.put([b"new"])
    [(new_id, _)] = reopened.peek(10, 100)
    assert new_id >> 32 > max(event_id >> 32 for event_id, _ in rows)  # no group number reused


def test_an_empty_queue_file_of_version_1_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    write_version_1_queue(path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM groups")
        db.execute("DELETE FROM sqlite_sequence")

    queue = DiskQueue(path)
    queue.put([b"1", b"2"])
    assert queue.peek_batch(10, 100).array == b"[1,2]"


def test_a_batch_is_whole_groups_as_stored_or_the_first_events_of_one(tmp_path: Path) -> None:
    """A batch carries the stored bytes of its groups as they are; delivering it deletes the
    groups it took, or cuts the events it took off the front of a group too big for it."""
    queue = DiskQueue(tmp_path / "q.sqlite3")
    queue.put([b"a1", b"a2"])
    queue.put([b"b1", b"b2", b"b3"])

    batch = queue.peek_batch(5, 1000)
    assert (len(batch), batch.size, batch.array) == (5, 10, b"[a1,a2,b1,b2,b3]")
    assert [part.body for part in batch.parts] == [b"a1,a2", b"b1,b2,b3"]
    assert [body for _, body in batch.rows] == [b"a1", b"a2", b"b1", b"b2", b"b3"]
    assert queue.ack_batch(queue.peek_batch(2, 1000)) == 2

    batch = queue.peek_batch(2, 1000)
    assert (len(batch), batch.array) == (2, b"[b1,b2]")
    assert queue.ack_batch(batch) == 2
    assert [body for _, body in queue.peek(10, 1000)] == [b"b3"]
    assert queue.peek_batch(10, 1000).array == b"[b3]"
    assert (len(queue), queue.size_bytes) == (1, 2)
    stats = queue.stats()
    assert (stats.enqueued, stats.sent, stats.queued) == (5, 4, 1)


def test_a_batch_delivered_after_its_group_changed_removes_only_its_own_events(
    tmp_path: Path,
) -> None:
    """The full-queue policy may take a group's oldest events between the read of a batch
    and HQ's answer: those count as dropped, the rest of the batch as sent, once each."""
    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=8)
    queue.put([b"1111", b"2222"])
    batch = queue.peek_batch(10, 1000)

    assert queue.put([b"33"]) == [b"1111"]  # drop-oldest
    assert queue.ack_batch(batch) == 1  # 2222; 1111 was dropped already
    assert [body for _, body in queue.peek(10, 1000)] == [b"33"]
    stats = queue.stats()
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (3, 1, 1, 1)


def test_rows_are_no_larger_than_a_batch_so_batches_take_them_whole(tmp_path: Path) -> None:
    """A sender gives its queue its batch bounds as the rows' bounds (count and bytes)."""
    queue = DiskQueue(tmp_path / "q.sqlite3", group_events=2, group_bytes=5)
    queue.put([b"1", b"2", b"3", b"4444", b"55", b"666666"])

    batches = []
    while batch := queue.peek_batch(2, 5):
        batches.append([part.body for part in batch.parts])
        queue.ack_batch(batch)
    assert batches == [[b"1,2"], [b"3,4444"], [b"55"], [b"666666"]]


def test_a_batch_acked_twice_is_counted_once(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.sqlite3")
    queue.put([b"1", b"2"])
    batch = queue.peek_batch(10, 100)

    assert queue.ack_batch(batch) == 2
    assert queue.ack_batch(batch) == 0
    stats = queue.stats()
    assert (stats.enqueued, stats.sent, stats.queued) == (2, 2, 0)


def test_the_file_holds_only_the_queue_s_tables_and_its_counters_survive(tmp_path: Path) -> None:
    """The statements that count group commits and acks are the connection's own: an older
    agent opening the file meets only its tables, and the counts they left."""
    path = tmp_path / "q.sqlite3"
    queue = DiskQueue(path)
    queue.put([b"1", b"2", b"3"])
    queue.ack_batch(queue.peek_batch(10, 100))
    queue.put([b"4"])
    queue.close()

    db = sqlite3.connect(path)
    kinds = db.execute("SELECT type, name FROM sqlite_master WHERE type != 'index'").fetchall()
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    db.close()
    assert sorted(kinds) == [
        ("table", "counters"),
        ("table", "groups"),
        ("table", "sqlite_sequence"),
    ]
    assert counters == {"enqueued": 4, "sent": 3, "dropped": 0}


@pytest.mark.parametrize("seed", range(40))
def test_batches_read_from_memory_are_those_the_file_holds(tmp_path: Path, seed: int) -> None:
    """The queue keeps the rows it just wrote in memory for the next batch; mixed with every
    kind of change to the rows (acks, drops, both full-queue policies, rows cut), it answers
    as a queue that reads everything from its file (its memory emptied before each call)."""
    rnd = random.Random(seed)  # noqa: S311 - a repeatable sequence, not a secret
    bounds = {
        "max_bytes": rnd.choice([30, 200, 5000]),
        "when_full": rnd.choice(["drop-oldest", "drop-newest"]),
        "group_events": rnd.choice([1, 3, 10]),
        "group_bytes": rnd.choice([5, 40, 1000]),
    }
    queues = [DiskQueue(tmp_path / f"{name}.sqlite3", **bounds) for name in ("mem", "file")]  # type: ignore[arg-type]
    batches: list[Any] = [None, None]
    made = 0
    for step in range(150):
        kind, coin = rnd.random(), rnd.random()
        sizes = [rnd.randint(1, 9) for _ in range(rnd.randint(1, 8))]
        answers: list[object] = []
        for i, queue in enumerate(queues):
            if i:
                queue._fresh.clear()
            choice = random.Random(step)  # noqa: S311 - the same choices for both
            if kind < 0.4:
                bodies = [b"e%d" % (made + j) + b"y" * size for j, size in enumerate(sizes)]
                answers.append(queue.put(bodies, dropped=int(coin < 0.1)))
            elif kind < 0.7:
                batches[i] = queue.peek_batch(choice.randint(1, 12), choice.randint(1, 60))
                answers.append((batches[i].array, [list(p.places) for p in batches[i].parts]))
            elif kind < 0.85 and batches[i] is not None:
                answers.append(queue.ack_batch(batches[i]))
            else:
                ids = [
                    id for id, _ in queue.peek(choice.randint(1, 12), 100) if choice.random() < 0.5
                ]
                answers.append(queue.ack(ids) if coin < 0.5 else queue.drop(ids))
        made += len(sizes) if kind < 0.4 else 0
        assert answers[0] == answers[1]
        mem, file = (queue.stats() for queue in queues)
        assert mem == file
        assert mem.enqueued == mem.sent + mem.dropped + mem.queued
