"""Drafts: the request and log agents hand a sender the values of an event, and the sender's
thread builds, encodes and checks it. What reaches HQ is the event built at once; what the rules
refuse is dropped there, counted and reported (docs/agents.md, "Drafts")."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from logspace.agent import (
    AgentConfig,
    ASGIMiddleware,
    DiskQueue,
    Dropped,
    LogHandler,
    MemorySink,
    Sender,
    WSGIMiddleware,
)
from logspace.agent.builder import Event, new_event


class HQ:
    """Answers 202 and keeps the events it received."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.accepted.extend(orjson.loads(body))
        return httpx.Response(202, json={})


def sender(tmp_path: Path, hq: HQ, dropped: list[Dropped] | None = None, **changes: Any) -> Sender:
    config = AgentConfig(
        token="secret",
        hq_url="http://hq.test",
        queue_dir=tmp_path,
        batch_max_age=0.0,
        shutdown_timeout=5.0,
        **changes,
    )
    return Sender(
        config,
        transport=httpx.MockTransport(hq),
        on_drop=dropped.extend if dropped is not None else None,
    )


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what differs between two requests: id, time and duration."""
    return {
        name: value
        for name, value in event.items()
        if name not in ("id", "timestamp", "long-properties")
    }


async def moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/items/2", status_code=303)


async def asgi_requests(sink: Any) -> None:
    app = Starlette(
        routes=[Route("/moved", moved, methods=["POST"])],
        middleware=[Middleware(ASGIMiddleware, sink=sink)],
    )
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test:8080") as client:
        await client.post("/moved?x=1", headers={"Request-ID": "r-1"})
        await client.get("/nowhere")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("302 Found", [("Location", "/here")])
    return [b""]


def wsgi_requests(sink: Any) -> None:
    transport = httpx.WSGITransport(app=WSGIMiddleware(wsgi_app, sink))
    with httpx.Client(transport=transport, base_url="http://shop.test") as client:
        client.get("/items/1?x=1", headers={"X-Request-ID": "r-2"})


def log_records(sink: Any) -> None:
    logger = logging.getLogger("tests.drafts")
    logger.propagate = False
    handler = LogHandler(sink)
    logger.addHandler(handler)
    try:
        logger.warning("disk %s at %d %%", "/var", 93)
        try:
            raise KeyError("missing")
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)


@pytest.mark.anyio
async def test_asgi_events_from_drafts_are_those_built_at_once(tmp_path: Path) -> None:
    at_once = MemorySink()
    await asgi_requests(at_once)
    hq = HQ()
    with sender(tmp_path, hq) as drafting:
        await asgi_requests(drafting)
        assert drafting.flush(10)

    assert len(hq.accepted) == 2
    assert [comparable(e) for e in hq.accepted] == [comparable(e) for e in at_once.events]
    assert [e["timestamp"][:16] for e in hq.accepted] == [
        e["timestamp"][:16] for e in at_once.events
    ]
    # Every event has its own id, in the form EventBuilder gives.
    assert len({e["id"] for e in hq.accepted}) == 2


def test_wsgi_and_log_events_from_drafts_are_those_built_at_once(tmp_path: Path) -> None:
    at_once = MemorySink()
    wsgi_requests(at_once)
    log_records(at_once)
    hq = HQ()
    with sender(tmp_path, hq) as drafting:
        wsgi_requests(drafting)
        log_records(drafting)
        assert drafting.flush(10)

    assert [comparable(e) for e in hq.accepted] == [comparable(e) for e in at_once.events]
    request, warning, failure = hq.accepted
    assert request["string-properties"]["path"] == "/items/1"
    assert warning["string-properties"]["message"] == "disk /var at 93 %"
    assert "KeyError: 'missing'" in failure["string-properties"]["exception"]


def test_system_and_marker_are_stamped_on_drafted_events(tmp_path: Path) -> None:
    hq = HQ()
    with sender(tmp_path, hq, system="web-7", marker="m-1") as drafting:
        log_records(drafting)
        assert drafting.flush(10)

    assert {(e["system"], e["marker"]) for e in hq.accepted} == {("web-7", "m-1")}


def test_a_draft_the_rules_refuse_is_dropped_counted_and_reported(tmp_path: Path) -> None:
    """A log record from a clock before 2000: `emit` cannot raise for it any more, so the
    sender's thread drops it, and says so."""
    hq, dropped = HQ(), []
    logger = logging.getLogger("tests.drafts.clock")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with sender(tmp_path, hq, dropped) as drafting:
        logger.addHandler(LogHandler(drafting))
        logger.info("before")
        ancient = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "in 1970", (), None)
        ancient.created = 0.0
        logger.handle(ancient)
        logger.info("after")
        assert drafting.flush(10)
        stats = drafting.stats
    logger.handlers.clear()

    assert [e["string-properties"]["message"] for e in hq.accepted] == ["before", "after"]
    [drop] = dropped
    assert drop.reason == "invalid"
    assert "timestamp" in drop.message
    assert drop.event is not None
    assert drop.event["string-properties"]["message"] == "in 1970"
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (3, 2, 1, 0)


def test_a_draft_that_cannot_be_built_spares_the_rest_of_its_group(tmp_path: Path) -> None:
    def build(values: Sequence[Any], ids: Sequence[str]) -> list[Event]:
        events = []
        for value, event_id in zip(values, ids, strict=True):
            if value == "bad":
                raise ValueError("no event for you")
            event = new_event("demo/draft", id=event_id)
            event["string-properties"] = {"value": value}
            events.append(event)
        return events

    hq, dropped = HQ(), []
    with sender(tmp_path, hq, dropped) as drafting:
        for value in ("one", "bad", "two"):
            drafting.send_draft(build, value, 100)
        assert drafting.flush(10)
        stats = drafting.stats

    assert [e["string-properties"]["value"] for e in hq.accepted] == ["one", "two"]
    [drop] = dropped
    assert (drop.reason, drop.body) == ("invalid", b"")
    assert "could not be built" in drop.message
    assert "no event for you" in drop.message
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (3, 2, 1, 0)


def test_a_large_group_of_drafts_keeps_its_order_and_its_drops_in_place(tmp_path: Path) -> None:
    """The buffer's thread builds a group in slices; the events come out in the order they
    were handed over, whichever slice refuses one."""
    hq, dropped = HQ(), []
    logger = logging.getLogger("tests.drafts.many")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    # One group: nothing is committed before the flush.
    with sender(tmp_path, hq, dropped, commit_interval=60.0) as drafting:
        logger.addHandler(LogHandler(drafting))
        for n in range(350):
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, str(n), (), None)
            if n in (0, 150, 349):
                record.created = 0.0
            logger.handle(record)
        assert drafting.stats.buffered == 350
        assert drafting.flush(10)
        stats = drafting.stats
    logger.handlers.clear()

    expected = [str(n) for n in range(350) if n not in (0, 150, 349)]
    assert [e["string-properties"]["message"] for e in hq.accepted] == expected
    assert len({e["id"] for e in hq.accepted}) == len(expected)
    assert [d.event["string-properties"]["message"] for d in dropped if d.event] == [
        "0",
        "150",
        "349",
    ]
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (350, 347, 3, 0)


class HangingDisk(DiskQueue):
    """A queue whose commits hang until `resume`; `hanging` is set once one does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = threading.Event()
        self.hanging = threading.Event()

    def resume(self) -> None:
        self.running.set()

    def put(self, bodies: Sequence[bytes], **options: Any) -> list[bytes]:
        self.hanging.set()
        self.running.wait()
        return super().put(bodies, **options)


def test_a_caller_builds_its_own_event_while_the_buffer_is_half_full_of_drafts(
    tmp_path: Path,
) -> None:
    """Drafts do not pile up behind a thread that cannot keep up (here its disk hangs; in
    life, an application thread that keeps the GIL busy) until the full buffer drops them:
    from half the buffer on, the caller builds its event itself, and the order holds."""
    builders: dict[str, str] = {}

    def build(values: Sequence[Any], ids: Sequence[str]) -> list[Event]:
        events = []
        for value, event_id in zip(values, ids, strict=True):
            builders[value] = threading.current_thread().name
            event = new_event("demo/draft", id=event_id)
            event["string-properties"] = {"value": value}
            events.append(event)
        return events

    hq, disk = HQ(), HangingDisk(tmp_path / "q.sqlite3")
    # Drafts of 200 bytes: 20 of them fill half the buffer.
    config = AgentConfig(
        token="secret", hq_url="http://hq.test", batch_max_age=0.0, buffer_max_bytes=8000
    )
    try:
        with Sender(config, queue=disk, transport=httpx.MockTransport(hq)) as drafting:
            drafting.send_draft(build, "first", 200)
            assert disk.hanging.wait(30)  # the thread took "first" and waits for the disk
            values = [f"v{n}" for n in range(30)]
            for value in values:
                drafting.send_draft(build, value, 200)
            # Built so far: "first" by the thread, the drafts beyond half the buffer by us.
            built_meanwhile = dict(builders)
            disk.resume()
            assert drafting.flush(10)
            stats = drafting.stats
    finally:
        disk.resume()
        disk.close()

    assert [e["string-properties"]["value"] for e in hq.accepted] == ["first", *values]
    caller = threading.current_thread().name
    assert list(built_meanwhile) == ["first", *values[20:]]
    assert built_meanwhile["first"] != caller
    assert {built_meanwhile[value] for value in values[20:]} == {caller}
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (31, 31, 0, 0)
