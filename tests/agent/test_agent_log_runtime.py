"""The log agent and the runtime agent, alone and into Elasticsearch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from logspace.agent import (
    AsyncSender,
    EventBuilder,
    LogHandler,
    MemorySink,
    RuntimeAgent,
    Scheduler,
)
from logspace.agent.runtime import monitor_runtime

from ..agent_support import Serve, agent_config, serve_hq

__all__ = ["serve_hq"]  # a fixture, from tests/agent_support.py


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("shop.orders")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.handlers.clear()
    logger.propagate = True


def test_a_log_record_becomes_an_event_with_category_message_and_level(
    logger: logging.Logger,
) -> None:
    sink = MemorySink()
    logger.addHandler(LogHandler(sink))

    logger.warning("order %s is late", 42)

    [event] = sink.events
    assert (event["type"], event["agent-id"]) == ("log", "log")
    strings = event["string-properties"]
    assert (strings["category"], strings["message"], strings["level"]) == (
        "shop.orders",
        "order 42 is late",
        "WARNING",
    )
    assert (
        strings["function"] == "test_a_log_record_becomes_an_event_with_category_message_and_level"
    )
    assert event["integer-properties"]["level_number"] == logging.WARNING
    assert "exception" not in strings


def test_exceptions_travel_as_their_traceback_and_the_level_filters(
    logger: logging.Logger,
) -> None:
    sink = MemorySink()
    logger.addHandler(LogHandler(sink, level=logging.ERROR))

    logger.info("not sent")
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("failed")

    [event] = sink.events
    assert event["string-properties"]["level"] == "ERROR"
    assert "ValueError: broken" in event["string-properties"]["exception"]


def test_the_agent_library_own_logs_are_not_turned_into_events() -> None:
    sink = MemorySink()
    handler = LogHandler(sink)
    library = logging.getLogger("logspace.agent")
    library.addHandler(handler)
    try:
        library.warning("HQ is down")
    finally:
        library.removeHandler(handler)
    assert sink.events == []


def test_runtime_start_statistics_and_stop_share_one_gid() -> None:
    agent = RuntimeAgent("billing")

    start, [statistics], stop = agent.start_event(), agent.collect(), agent.stop_event()

    assert [e["type"] for e in (start, statistics, stop)] == [
        "python/start",
        "python/statistics",
        "python/stop",
    ]
    assert {e["agent-id"] for e in (start, statistics, stop)} == {"python/billing"}
    assert start["gid"] == statistics["gid"] == stop["gid"] == agent.gid
    assert RuntimeAgent("billing").gid != agent.gid
    assert {"python_version", "os_name", "cpu_endian"} <= set(start["string-properties"])
    assert set(stop) == {"id", "type", "system", "agent-id", "timestamp", "gid"}
    assert {"thread_count", "daemon_thread_count"} <= set(statistics["integer-properties"])
    longs = statistics["long-properties"]
    assert {"resident_memory", "open_file_descriptor_count", "gc_generation0_collections"} <= set(
        longs
    )
    assert {"process_cpu_load", "process_cpu_time"} <= set(statistics["double-properties"])


def test_monitor_runtime_sends_start_now_and_stop_once() -> None:
    sink = MemorySink()
    scheduler = Scheduler(sink)

    monitor = monitor_runtime(sink, interval=3600, identifier="svc", scheduler=scheduler)
    scheduler.run_pending()
    monitor.stop()
    monitor.stop()

    assert [e["type"] for e in sink.events] == ["python/start", "python/statistics", "python/stop"]
    assert scheduler.intervals == {}


@pytest.mark.anyio
async def test_log_and_runtime_events_reach_elasticsearch(
    serve_hq: Serve, stored: Any, tmp_path: Path, logger: logging.Logger
) -> None:
    async with serve_hq() as hq, AsyncSender(agent_config(tmp_path), transport=hq) as sender:
        logger.addHandler(LogHandler(sender))
        monitor = await asyncio.to_thread(monitor_runtime, sender, interval=0.05, identifier="t")
        logger.error("payment refused")
        await asyncio.sleep(0.2)
        await asyncio.to_thread(monitor.stop)
        assert await sender.flush(30)

    types = [e["type"] for e in stored()]
    assert types.count("python/start") == types.count("python/stop") == 1
    assert types.count("python/statistics") >= 1
    [log] = stored({"term": {"type": "log"}})
    assert log["string-properties"]["message"] == "payment refused"
    assert {e["gid"] for e in stored({"prefix": {"type": "python/"}})} == {monitor.agent.gid}


def test_the_log_event_is_the_one_event_builder_builds(logger: logging.Logger) -> None:
    sink = MemorySink()
    logger.addHandler(LogHandler(sink))
    try:
        raise ValueError("late")
    except ValueError:
        logger.exception("order %s failed", 7)

    [event] = sink.events
    strings, integers = event["string-properties"], event["integer-properties"]
    built = (
        EventBuilder("log", "log", id=event["id"], timestamp=event["timestamp"])
        .string("category", strings["category"])
        .string("message", strings["message"])
        .string("level", strings["level"])
        .integer("level_number", integers["level_number"])
        .string("module", strings["module"])
        .string("function", strings["function"])
        .integer("line", integers["line"])
        .string("thread_name", strings["thread_name"])
        .string("exception", strings["exception"])
        .build()
    )
    assert orjson.dumps(event) == orjson.dumps(built)  # the same bytes on the wire
    assert "ValueError: late" in strings["exception"]
