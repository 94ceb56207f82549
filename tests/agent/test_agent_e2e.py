"""Agents end to end: the agent library, HQ in process and the real Elasticsearch node."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.agent import (
    AsyncSender,
    DiskQueue,
    Dropped,
    EventBuilder,
    Scheduler,
    os_agents,
)

from ..agent_support import Serve, Switch, agent_config, serve_hq, unused_port

pytestmark = pytest.mark.anyio

__all__ = ["serve_hq"]  # a fixture, from tests/agent_support.py


def demo_events(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [EventBuilder("demo/event").long("n", n).build() for n in range(start, start + count)]


async def test_the_os_monitor_runs_a_few_cycles_and_its_events_are_stored_with_their_types(
    serve_hq: Serve, stored: Any, es: httpx.Client, prefix: str, tmp_path: Path
) -> None:
    async with (
        serve_hq() as transport,
        AsyncSender(agent_config(tmp_path), transport=transport) as sender,
    ):
        scheduler = Scheduler(sender)
        for collector in os_agents():
            scheduler.add(collector, 0.05)
        await asyncio.to_thread(scheduler.run, cycles=3)
        assert await sender.flush(30)
        stats = sender.stats

    events = stored()
    types = Counter(event["type"] for event in events)
    for single in ("os/cpu", "os/memory", "os/swap", "os/load"):
        assert types[single] == 3, types
    for per_item in ("os/disk", "os/network"):
        assert types[per_item] >= 3, types
        assert types[per_item] % 3 == 0, types
    assert (stats.sent, stats.dropped, stats.queued) == (len(events), 0, 0)

    cpu = next(e for e in events if e["type"] == "os/cpu")
    assert cpu["agent-id"] == "os/cpu"
    assert set(cpu["integer-properties"]) == {"processor_count"}
    assert set(cpu["double-properties"]) == {"system_load_average", "system_cpu_load"}
    memory = next(e for e in events if e["type"] == "os/memory")
    assert {"total_memory", "free_memory", "used_memory", "committed_virtual_memory"} <= set(
        memory["long-properties"]
    )
    disk = next(e for e in events if e["type"] == "os/disk")
    assert disk["string-properties"]["disk_path"].startswith("/")
    assert set(disk["long-properties"]) == {
        "disk_total_space",
        "disk_usable_space",
        "disk_unallocated_space",
        "disk_used_space",
    }
    swap = next(e for e in events if e["type"] == "os/swap")
    assert set(swap["long-properties"]) == {
        "swap_total_space",
        "swap_free_space",
        "swap_used_space",
    }

    mappings = es.get(f"/{prefix}-*/_mapping").json()
    fields = next(iter(mappings.values()))["mappings"]["properties"]
    field_types = {
        (family, name): spec["type"]
        for family in fields
        if family.endswith("-properties")
        for name, spec in fields[family].get("properties", {}).items()
    }
    assert field_types[("integer-properties", "processor_count")] == "integer"
    assert field_types[("double-properties", "system_cpu_load")] == "double"
    assert field_types[("long-properties", "disk_total_space")] == "long"
    assert field_types[("string-properties", "disk_path")] == "keyword"
    assert field_types[("long-properties", "bytes_received")] == "long"


async def test_a_batch_with_invalid_events_delivers_every_valid_one(
    serve_hq: Serve, stored: Any, tmp_path: Path
) -> None:
    """The invalid events come from the queue of an older agent; HQ names them, the agent
    drops exactly those and sends the rest."""
    config = agent_config(tmp_path, batch_max_age=3600.0)
    queue = DiskQueue(config.queue_path)
    valid = demo_events(6)
    late_timestamp = {**demo_events(1)[0], "id": "bad-timestamp", "timestamp": "yesterday"}
    unknown_field = {**demo_events(1)[0], "id": "bad-field", "colour": "red"}
    queue.put([orjson.dumps(e) for e in valid[:2]])
    queue.put([orjson.dumps(late_timestamp)])
    queue.put([orjson.dumps(e) for e in valid[2:4]])
    queue.put([orjson.dumps(unknown_field)])
    queue.put([orjson.dumps(e) for e in valid[4:]])
    dropped: list[Dropped] = []

    async with (
        serve_hq() as transport,
        AsyncSender(config, queue=queue, transport=transport, on_drop=dropped.extend) as sender,
    ):
        assert await sender.flush(30)
        stats = sender.stats

    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in valid)
    assert [(d.reason, d.event and d.event["id"]) for d in dropped] == [
        ("invalid", "bad-timestamp"),
        ("invalid", "bad-field"),
    ]
    assert "expected an ISO-8601 date-time" in dropped[0].message
    assert "unknown field 'colour'" in dropped[1].message
    assert (stats.sent, stats.dropped, stats.queued) == (6, 2, 0)


async def test_batches_hq_finds_too_large_are_split_and_an_oversized_event_is_dropped(
    serve_hq: Serve, stored: Any, tmp_path: Path
) -> None:
    events = demo_events(20)
    huge = EventBuilder("demo/event").string("blob", "x" * 5000).build()
    dropped: list[Dropped] = []

    async with serve_hq(max_body_bytes=2000) as transport:
        config = agent_config(tmp_path, batch_max_age=3600.0)
        async with AsyncSender(config, transport=transport, on_drop=dropped.extend) as sender:
            sender.send_many([*events[:10], huge, *events[10:]])
            assert await sender.flush(30)

    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in events)
    assert [(d.reason, d.event and d.event["id"]) for d in dropped] == [("rejected", huge["id"])]
    assert "REQUEST_TOO_LARGE" in dropped[0].message


async def test_batches_go_compressed_by_default_and_hq_stores_them(
    serve_hq: Serve, stored: Any, tmp_path: Path
) -> None:
    events = demo_events(5)
    encodings: list[str | None] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            encodings.append(request.headers.get("content-encoding"))
            return await self.inner.handle_async_request(request)

    async with (
        serve_hq() as transport,
        AsyncSender(agent_config(tmp_path), transport=Recording(transport)) as sender,
    ):
        sender.send_many(events)
        assert await sender.flush(30)

    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in events)
    assert encodings
    assert set(encodings) == {"gzip"}


async def test_after_hq_and_elasticsearch_outages_and_a_restart_every_event_arrives_once(
    serve_hq: Serve, stored: Any, tmp_path: Path
) -> None:
    switch = Switch()
    config = agent_config(tmp_path)
    produced: list[str] = []

    # HQ is down: the first agent queues its events, gives up at shutdown and stops.
    first = await AsyncSender(config, transport=switch).start()
    for event in demo_events(30):
        first.send(event)
        produced.append(event["id"])
    assert not await first.close(timeout=0.5)
    assert switch.attempts >= 1
    assert first.stats.queued == 30

    # The agent restarts on the same queue; HQ is back, but Elasticsearch is not.
    second = await AsyncSender(config, transport=switch).start()
    es_down = f"http://127.0.0.1:{unused_port()}"
    async with serve_hq(es_url=es_down, es_retry_seconds=0.2) as without_es:
        switch.hq = without_es
        for event in demo_events(20, start=30):
            second.send(event)
            produced.append(event["id"])
        assert not await second.flush(timeout=1.5)
    assert second.stats.queued == 50
    assert stored() == []

    # Elasticsearch is back: everything arrives, each event in exactly one accepted batch.
    async with serve_hq() as transport:
        switch.hq = transport
        assert await second.flush(timeout=60)
        assert await second.close()

    assert sorted(e["id"] for e in stored()) == sorted(produced)
    assert set(switch.accepted) == set(produced)
    assert set(switch.accepted.values()) == {1}
    stats = second.stats
    assert (stats.enqueued, stats.sent, stats.dropped, stats.queued) == (50, 50, 0, 0)
