"""The buffer in front of the queue: `send` never waits for the disk, groups are committed by a
thread of their own, a full buffer drops by the queue's policy, and the counters count from
`send` on, across restarts."""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from logspace.agent import (
    AgentConfig,
    ASGIMiddleware,
    AsyncSender,
    DiskQueue,
    Dropped,
    LogHandler,
    QueueStats,
    Sender,
    WSGIMiddleware,
)
from logspace.agent.buffer import Buffer, BufferClosed
from logspace.testing import make_event

# Generous: only a request path that waits for the stalled disk (forever) gets near it.
LIVENESS_SECONDS = 60.0


class StallingDisk(DiskQueue):
    """A queue whose commits wait while `stalled` (a disk that hangs), and that notes the size
    of each group committed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = threading.Event()
        self.running.set()
        self.groups: list[int] = []

    def stall(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def put(self, bodies: Sequence[bytes], **options: Any) -> list[bytes]:
        self.running.wait()
        self.groups.append(len(bodies))
        return super().put(bodies, **options)


class HQ:
    """Answers 202 and keeps the ids it accepted, in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.ids.extend(event["id"] for event in orjson.loads(body))
        return httpx.Response(202)


def config(tmp_path: Path, **changes: Any) -> AgentConfig:
    options: dict[str, Any] = {
        "token": "t",
        "hq_url": "http://hq.test",
        "queue_dir": tmp_path,
        "batch_max_age": 0.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "shutdown_timeout": 30.0,
    }
    options.update(changes)
    return AgentConfig(**options)


def completes(work: Callable[[], object]) -> bool:
    """Whether `work` finishes in another thread (it would hang if it waited for the disk)."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(LIVENESS_SECONDS)
    return not thread.is_alive()


def balanced(stats: QueueStats) -> bool:
    return stats.enqueued == stats.sent + stats.dropped + stats.queued


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[StallingDisk]:
    queue = StallingDisk(tmp_path / "q.sqlite3")
    yield queue
    queue.resume()
    queue.close()


def test_sends_complete_while_the_disk_stalls_and_the_events_follow_when_it_is_back(
    tmp_path: Path, disk: StallingDisk
) -> None:
    hq = HQ()
    events = [make_event() for _ in range(300)]
    with Sender(config(tmp_path), queue=disk, transport=httpx.MockTransport(hq)) as sender:
        disk.stall()
        assert completes(lambda: [sender.send(event) for event in events])
        disk.resume()
        assert sender.flush(30)
        stats = sender.stats

    assert hq.ids == [event["id"] for event in events]
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (300, 300, 0, 0)


def test_events_are_committed_in_groups_by_the_buffers_thread(
    tmp_path: Path, disk: StallingDisk
) -> None:
    """Without flush or close: the thread commits on its own, and many events per commit."""
    sender = Sender(config(tmp_path, commit_interval=0.2, batch_max_events=100), queue=disk)
    for _ in range(250):
        sender.send(make_event())

    for _ in range(600):
        if len(disk) == 250:
            break
        time.sleep(0.05)
    assert len(disk) == 250
    assert sum(disk.groups) == 250
    assert len(disk.groups) < 250 / 10
    sender.close(timeout=0)


def test_the_thread_encodes_a_small_group_in_slices_and_a_large_one_at_once() -> None:
    """Slices let an application thread waiting for the GIL in between (a light load's
    latency); a large group goes in one piece (a busy application's throughput). The events
    are the same and in order either way."""
    calls: list[int] = []

    def encode(drafts: Sequence[Any]) -> list[bytes | Dropped]:
        calls.append(len(drafts))
        return [b'{"n":%d}' % values for _, values, _ in drafts]

    queue = DiskQueue(None)
    buffer = Buffer(
        queue,
        max_bytes=10**7,
        interval=0.3,
        group_events=1000,
        group_bytes=10**7,
        when_full="drop-oldest",
        committed=lambda alone: None,
        report=lambda drops: None,
        encode_drafts=encode,
    )
    try:
        for size in (40, 200):
            calls.clear()
            before = len(queue)
            for n in range(size):
                buffer.put_draft(print, n, 10)
            for _ in range(300):
                if len(queue) == before + size:
                    break
                time.sleep(0.01)
            assert calls == ([16, 16, 8] if size == 40 else [200])
            rows = queue.peek(size, 10**7)
            assert [orjson.loads(body)["n"] for _, body in rows] == list(range(size))
            queue.ack([seq for seq, _ in rows])
    finally:
        buffer.close(5)
        queue.close()


def test_under_load_the_thread_commits_whole_groups_so_every_batch_is_full(
    tmp_path: Path, disk: StallingDisk
) -> None:
    """Events that arrive while a full group waits for the thread stay buffered for the next
    group: no row of a few events that would go to HQ as a batch of its own."""
    batches: list[int] = []

    def hq(request: httpx.Request) -> httpx.Response:
        batches.append(len(orjson.loads(gzip.decompress(request.content))))
        return httpx.Response(202)

    cfg = config(tmp_path, commit_interval=3600.0, batch_max_events=100, batch_max_age=3600.0)
    events = [make_event() for _ in range(300)]
    sender = Sender(cfg, queue=disk, transport=httpx.MockTransport(hq))
    # The thread is held back (as by a busy application) while 250 events arrive.
    with sender.buffer._commit_lock:
        for event in events[:250]:
            sender.send(event)
    for _ in range(600):
        if len(disk) == 200:
            break
        time.sleep(0.05)
    assert (len(disk), sender.stats.buffered) == (200, 50)
    assert balanced(sender.stats)
    for event in events[250:]:  # the next group fills up: committed whole, with the 50
        sender.send(event)
    for _ in range(600):
        if len(disk) == 300:
            break
        time.sleep(0.05)
    assert disk.groups == [200, 100]

    sender.start()
    assert sender.close()
    assert batches == [100, 100, 100]
    assert (sender.stats.enqueued, sender.stats.sent) == (300, 300)


def test_the_counters_count_an_event_from_send_on(tmp_path: Path) -> None:
    # A long interval and large groups: nothing is committed while we look.
    cfg = config(tmp_path, commit_interval=3600.0, batch_max_events=10_000)
    sender = Sender(cfg, transport=httpx.MockTransport(HQ()))
    for _ in range(5):
        sender.send(make_event())

    before = sender.stats
    assert (before.enqueued, before.queued, before.buffered, before.sent) == (5, 5, 5, 0)
    assert len(sender.queue) == 0  # nothing on disk yet
    assert balanced(before)

    assert sender.close()
    after = sender.stats
    assert (after.enqueued, after.sent, after.queued, after.buffered) == (5, 5, 0, 0)
    reopened = DiskQueue(cfg.queue_path).stats()
    assert (reopened.enqueued, reopened.sent) == (5, 5)


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop-oldest", ["e3", "e4"]), ("drop-newest", ["e0", "e1"])]
)
def test_a_full_buffer_drops_by_the_queues_policy_and_counts_it(
    tmp_path: Path, disk: StallingDisk, policy: str, kept: list[str]
) -> None:
    hq = HQ()
    seen: list[Dropped] = []
    events = [make_event(id=f"e{n}") for n in range(5)]
    size = len(orjson.dumps(events[0]))
    disk.when_full = policy  # type: ignore[assignment]
    cfg = config(
        tmp_path, buffer_max_bytes=2 * size + 10, commit_interval=3600.0, batch_max_events=1000
    )
    with Sender(cfg, queue=disk, transport=httpx.MockTransport(hq), on_drop=seen.extend) as sender:
        assert completes(lambda: [sender.send(event) for event in events])
        stats = sender.stats
        assert (stats.enqueued, stats.dropped, stats.buffered) == (5, 3, 2)
        assert balanced(stats)
        assert sender.flush(30)
        final = sender.stats

    assert hq.ids == kept
    assert sorted(d.event["id"] for d in seen if d.event) == sorted(
        e["id"] for e in events if e["id"] not in kept
    )
    assert {d.reason for d in seen} == {"queue-full"}
    assert (final.enqueued, final.sent, final.dropped, final.queued) == (5, 2, 3, 0)
    # The drops were written into the file with the group, so they hold across a restart.
    assert (disk.stats().enqueued, disk.stats().dropped) == (5, 3)


def test_a_failed_commit_keeps_the_group_and_commits_it_later(tmp_path: Path) -> None:
    class FailingOnce(DiskQueue):
        failed = False

        def put(self, bodies: Sequence[bytes], **options: Any) -> list[bytes]:
            if not self.failed:
                self.failed = True
                raise OSError("disk I/O error")
            return super().put(bodies, **options)

    hq = HQ()
    queue = FailingOnce(tmp_path / "q.sqlite3")
    events = [make_event() for _ in range(20)]
    with Sender(config(tmp_path), queue=queue, transport=httpx.MockTransport(hq)) as sender:
        for event in events:
            sender.send(event)
        assert sender.flush(30)
        stats = sender.stats
    queue.close()

    assert queue.failed
    assert hq.ids == [event["id"] for event in events]
    assert (stats.enqueued, stats.sent) == (20, 20)


def test_close_commits_what_is_buffered_and_later_sends_are_refused(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    cfg = config(tmp_path, commit_interval=3600.0)
    sender = Sender(cfg, transport=httpx.MockTransport(down)).start()
    sender.send(make_event(id="kept"))
    assert not sender.close(timeout=0.2)

    with pytest.raises(BufferClosed):
        sender.send(make_event())
    reopened = DiskQueue(cfg.queue_path)
    assert [orjson.loads(body)["id"] for _, body in reopened.peek(10, 10_000)] == ["kept"]
    assert reopened.stats().enqueued == 1


@pytest.mark.anyio
async def test_asgi_requests_complete_while_the_disk_stalls(
    tmp_path: Path, disk: StallingDisk
) -> None:
    """For ASGI the sending thread is the event loop: a commit there would stall every request."""
    hq = HQ()

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    sender = await AsyncSender(
        config(tmp_path), queue=disk, transport=httpx.MockTransport(hq)
    ).start()
    app = Starlette(routes=[Route("/", ok)], middleware=[Middleware(ASGIMiddleware, sink=sender)])
    disk.stall()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        answers = [await client.get("/", headers={"X-Request-ID": f"r{n}"}) for n in range(50)]
    assert [a.status_code for a in answers] == [200] * 50
    assert len(hq.ids) == 0

    disk.resume()
    assert await sender.close(30)
    assert len(hq.ids) == 50
    assert sender.stats.sent == 50


def test_wsgi_requests_and_logging_calls_complete_while_the_disk_stalls(
    tmp_path: Path, disk: StallingDisk
) -> None:
    hq = HQ()

    def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    logger = logging.getLogger("test.stalled.disk")
    logger.propagate = False
    with Sender(config(tmp_path), queue=disk, transport=httpx.MockTransport(hq)) as sender:
        handler = LogHandler(sender)
        logger.addHandler(handler)
        app = WSGIMiddleware(hello, sender)
        disk.stall()

        def work() -> None:
            with httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
                for _ in range(30):
                    assert client.get("http://app.test/").text == "ok"
                    logger.warning("a request")

        try:
            assert completes(work)
        finally:
            logger.removeHandler(handler)
            disk.resume()
        assert sender.flush(30)
        stats = sender.stats

    assert (stats.enqueued, stats.sent) == (60, 60)
    assert len(set(hq.ids)) == 60


EXITING = """
import sys
from logspace.agent import AgentConfig, Sender
from logspace.testing import make_event
sender = Sender(AgentConfig(token="t", hq_url="http://127.0.0.1:9", queue_dir=sys.argv[1],
                            commit_interval=3600.0, batch_max_events=10_000))
for n in range(7):
    sender.send(make_event(id=f"e{n}"))
print(sender.stats.buffered)
"""


def test_a_program_that_exits_without_closing_its_sender_keeps_the_buffered_events(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXITING, str(tmp_path)], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"  # all still in memory when the program ended
    queue = DiskQueue(config(tmp_path).queue_path)
    assert [orjson.loads(body)["id"] for _, body in queue.peek(10, 10_000)] == [
        f"e{n}" for n in range(7)
    ]
    assert queue.stats().enqueued == 7
