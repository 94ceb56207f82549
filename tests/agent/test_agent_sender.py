"""The senders against scripted HQs (httpx.MockTransport): threads, asyncio, restarts."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.agent import (
    AgentConfig,
    AsyncSender,
    DiskQueue,
    Dropped,
    EventBuilder,
    InvalidEvent,
    Sender,
    encode_event,
)
from logspace.testing import make_event


class ScriptedHQ:
    """Answers with the given statuses in turn, then 202; records what it received."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []
        self.accepted: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 202
        if status == 202:
            body = request.content
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.accepted.extend(orjson.loads(body))
        return httpx.Response(status, json={"type": "X", "message": "m", "parameters": {}})


def config(tmp_path: Path, **changes: Any) -> AgentConfig:
    options: dict[str, Any] = {
        "token": "secret",
        "hq_url": "http://hq.test",
        "queue_dir": tmp_path,
        "batch_max_age": 0.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "shutdown_timeout": 5.0,
    }
    options.update(changes)
    return AgentConfig(**options)


def test_the_threaded_sender_delivers_in_the_background(tmp_path: Path) -> None:
    hq = ScriptedHQ()
    events = [EventBuilder("demo").long("n", n).build() for n in range(5)]

    with Sender(config(tmp_path), transport=httpx.MockTransport(hq)) as sender:
        for event in events:
            sender.send(event)
        assert sender.flush(10)
        stats = sender.stats

    assert hq.accepted == events
    assert (stats.sent, stats.dropped, stats.queued) == (5, 0, 0)
    request = hq.requests[0]
    assert request.method == "PUT"
    assert str(request.url) == "http://hq.test/events"
    assert request.headers["logspace.space-token"] == "secret"
    assert request.headers["content-type"] == "application/json"


def test_events_go_out_at_their_batch_age_whatever_the_loop_was_waiting_for(
    tmp_path: Path,
) -> None:
    """The loop sleeps until it is woken or the oldest event is old enough; a group committed
    to an empty queue (the loop idle), or while a batch is in flight, still goes at its age."""
    first_request = threading.Event()
    release = threading.Event()
    hq = ScriptedHQ()

    def answer(request: httpx.Request) -> httpx.Response:
        if not hq.requests:
            first_request.set()
            release.wait(10)
        return hq(request)

    cfg = config(tmp_path, batch_max_age=0.2, commit_interval=0.01)
    with Sender(cfg, transport=httpx.MockTransport(answer)) as sender:
        sender.send(make_event())  # into an empty queue, the loop idle
        assert first_request.wait(5)
        sender.send(make_event())  # while the first batch is in flight
        for _ in range(100):
            if sender.stats.buffered == 0:
                break
            time.sleep(0.01)
        release.set()
        for _ in range(300):
            if len(hq.accepted) == 2:
                break
            time.sleep(0.01)
        delivered = len(hq.accepted)
        sender.send(make_event())  # into an empty queue again, the loop idle again
        for _ in range(300):
            if len(hq.accepted) == 3:
                break
            time.sleep(0.01)
        # Within 3 s, not the loop's idle minute (and not at close, which flushes).
        assert (delivered, len(hq.accepted)) == (2, 3)


def test_system_and_marker_from_the_configuration_are_stamped(tmp_path: Path) -> None:
    hq = ScriptedHQ()
    with Sender(
        config(tmp_path, system="web-1", marker="blue"), transport=httpx.MockTransport(hq)
    ) as sender:
        sender.send(make_event())
        sender.send(make_event(marker="own"))
        assert sender.flush(10)

    assert [(e["system"], e["marker"]) for e in hq.accepted] == [
        ("web-1", "blue"),
        ("web-1", "own"),
    ]


def test_an_invalid_event_is_refused_at_the_call(tmp_path: Path) -> None:
    with Sender(config(tmp_path), transport=httpx.MockTransport(ScriptedHQ())) as sender:
        with pytest.raises(InvalidEvent, match="missing required field 'id'"):
            sender.send({"type": "t", "system": "s", "agent-id": "a", "timestamp": "x"})
        assert sender.stats.enqueued == 0


def test_without_a_thread_flush_delivers_in_the_calling_thread(tmp_path: Path) -> None:
    hq = ScriptedHQ(503, 503)
    sender = Sender(config(tmp_path), transport=httpx.MockTransport(hq))
    sender.send(make_event())

    assert sender.flush(10)
    assert len(hq.requests) == 3
    assert sender.close()


def test_closing_while_hq_is_down_keeps_the_events_for_the_next_start(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    first = Sender(config(tmp_path), transport=httpx.MockTransport(down)).start()
    first.send(make_event(id="kept"))
    assert not first.close(timeout=0.3)
    assert first.stats.queued == 1

    hq = ScriptedHQ()
    with Sender(config(tmp_path), transport=httpx.MockTransport(hq)) as second:
        assert second.flush(10)
    assert [e["id"] for e in hq.accepted] == ["kept"]


def test_drops_reach_the_callback_and_a_failing_callback_changes_nothing(tmp_path: Path) -> None:
    seen: list[Dropped] = []

    def on_drop(dropped: list[Dropped]) -> None:
        seen.extend(dropped)
        raise RuntimeError("callback bug")

    queue = DiskQueue(tmp_path / "q.sqlite3", max_bytes=400)
    with Sender(
        config(tmp_path, batch_max_age=3600.0),
        queue=queue,
        transport=httpx.MockTransport(ScriptedHQ()),
        on_drop=on_drop,
    ) as sender:
        for _ in range(4):  # each about 180 bytes: the oldest make room
            sender.send(make_event())
        assert sender.flush(10)
        stats = sender.stats

    assert {d.reason for d in seen} == {"queue-full"}
    assert stats.enqueued == stats.sent + stats.dropped
    assert stats.dropped == len(seen) >= 1


@pytest.mark.anyio
async def test_the_async_sender_delivers_from_a_task(tmp_path: Path) -> None:
    hq = ScriptedHQ(503)
    events = [make_event() for _ in range(3)]

    async with AsyncSender(config(tmp_path), transport=httpx.MockTransport(hq)) as sender:
        for event in events:
            sender.send(event)
        assert await sender.flush(10)

    assert hq.accepted == events
    assert sender.stats.sent == 3


@pytest.mark.anyio
async def test_the_async_sender_takes_events_from_other_threads(tmp_path: Path) -> None:
    hq = ScriptedHQ()
    # A long batch age: only the size threshold, reached from another thread, wakes the task.
    cfg = config(tmp_path, batch_max_age=3600.0, batch_max_events=10)

    async with AsyncSender(cfg, transport=httpx.MockTransport(hq)) as sender:
        thread = threading.Thread(target=lambda: [sender.send(make_event()) for _ in range(10)])
        thread.start()
        thread.join()
        for _ in range(500):
            if len(hq.accepted) == 10:
                break
            await asyncio.sleep(0.01)

    assert len(hq.accepted) == 10


@pytest.mark.anyio
async def test_async_close_while_hq_is_down_keeps_the_events(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    sender = await AsyncSender(config(tmp_path), transport=httpx.MockTransport(down)).start()
    sender.send(make_event())
    assert not await sender.close(timeout=0.2)
    assert DiskQueue(config(tmp_path).queue_path).stats().queued == 1


def test_an_agent_upgraded_in_place_ships_what_the_previous_version_queued(
    tmp_path: Path,
) -> None:
    """A queue file of version 1 (groups of events end to end) left by the previous agent is
    delivered by this one, every event once, and its counters go on."""
    old = [encode_event(make_event(id=f"old-{n}")) for n in range(5)]
    cfg = config(tmp_path)
    db = sqlite3.connect(cfg.queue_path)
    db.executescript(
        """
        CREATE TABLE groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
                             bodies BLOB NOT NULL, sizes BLOB NOT NULL, places BLOB NOT NULL);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('enqueued', 5), ('sent', 0), ('dropped', 0);
        """
    )
    for group in (old[:3], old[3:]):
        db.execute(
            "INSERT INTO groups (created, bodies, sizes, places) VALUES (1.0, ?, ?, x'')",
            (b"".join(group), struct.pack(f"<{len(group)}I", *map(len, group))),
        )
    db.commit()
    db.close()
    hq = ScriptedHQ()

    with Sender(cfg, transport=httpx.MockTransport(hq)) as sender:
        sender.send(make_event(id="new"))
        assert sender.flush(5)
        stats = sender.stats

    assert [event["id"] for event in hq.accepted] == [f"old-{n}" for n in range(5)] + ["new"]
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (6, 6, 0, 0)
