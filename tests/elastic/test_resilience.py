"""HQ when Elasticsearch is slow, unreachable, wiped or restarted: 202 only for stored events,
503 with Retry-After otherwise, bounded waiting and memory, and recovery by itself."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import orjson
import pytest

from logspace.testing import make_event

from ..clusters import EsScriptError, LocalNode
from ..processes import hq_environ, start_hq
from ..proxy import Proxy, proxy_to

pytestmark = pytest.mark.anyio


@pytest.fixture
def proxy(es_url: str) -> Iterator[Proxy]:
    with proxy_to(es_url) as proxy:
        yield proxy


async def test_a_slow_elasticsearch_gets_excess_work_refused_at_once(
    make_hq: Any, proxy: Proxy, stored: Any
) -> None:
    """Three requests fill the in-flight budget; the next ones get 503 before any of the three
    is answered, and the three are stored."""
    body = orjson.dumps([make_event(string_properties={"s": "x" * 2000}) for _ in range(5)])
    async with make_hq(es_url=proxy.url, max_inflight_bytes=len(body) * 3, es_timeout=60) as hq:
        proxy.delay = 1.5
        held = [asyncio.create_task(hq.put_events(body)) for _ in range(3)]
        while hq.app.state.hq.admission.in_flight < len(body) * 3:  # noqa: ASYNC110 - HQ's own count
            await asyncio.sleep(0.01)

        refused = [await hq.put_events(body) for _ in range(5)]
        still_in_flight = sum(not task.done() for task in held)
        accepted = await asyncio.gather(*held)

    assert [r.status_code for r in refused] == [503] * 5
    assert {r.json()["type"] for r in refused} == {"OVERLOADED"}
    assert all(r.headers["retry-after"] for r in refused)
    assert still_in_flight == 3
    assert [r.status_code for r in accepted] == [202] * 3
    assert len(stored()) == 5  # the three bodies carry the same five events


async def test_no_request_waits_on_elasticsearch_longer_than_the_timeout(
    make_hq: Any, proxy: Proxy, stored: Any
) -> None:
    """Elasticsearch answers after 4 s, HQ gives up after 1 s: 503, and a retry is safe."""
    events = [make_event(), make_event()]
    async with make_hq(es_url=proxy.url, es_timeout=1.0, es_retry_seconds=0.5) as hq:
        proxy.delay = 4
        slow = await hq.put_events(events)
        proxy.delay = 0
        retried = await hq.put_events(events)

    assert slow.status_code == 503
    assert slow.json()["type"] == "STORE_UNAVAILABLE"
    assert retried.status_code == 202
    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in events)


async def test_hq_recovers_when_elasticsearch_comes_back_empty(
    make_hq: Any, proxy: Proxy, es: httpx.Client, prefix: str, stored: Any
) -> None:
    """While Elasticsearch is unreachable HQ answers 503; it comes back without templates, and
    HQ installs them again before writing, so the new index gets the typed mapping."""
    event = make_event(integer_properties={"count": 3}, timestamp="2021-03-03T00:00:00Z")
    async with make_hq(es_url=proxy.url, es_retry_seconds=0.5) as hq:
        proxy.go_down()
        down = await hq.put_events([event])
        es.delete(f"/_index_template/{prefix}").raise_for_status()
        es.delete(f"/_component_template/{prefix}-*").raise_for_status()
        proxy.refuse = False
        back = await hq.put_events([event])

    assert down.status_code == 503
    assert down.json()["type"] == "STORE_UNAVAILABLE"
    assert "retry-after" in down.headers
    assert back.status_code == 202
    assert es.get(f"/_index_template/{prefix}").status_code == 200
    mapping = es.get(f"/{prefix}-development-2021.03/_mapping").json()
    properties = mapping[f"{prefix}-development-2021.03"]["mappings"]["properties"]
    assert properties["integer-properties"]["properties"]["count"]["type"] == "integer"
    assert [e["id"] for e in stored()] == [event["id"]]


async def test_the_property_budget_counts_what_elasticsearch_already_holds(
    make_hq: Any, stored: Any
) -> None:
    """A new HQ (empty cache) learns the space's properties from Elasticsearch."""
    async with make_hq(max_fields_per_space=2) as first:
        stored_response = await first.put_events([make_event(long_properties={"a": 1, "b": 2})])
    async with make_hq(max_fields_per_space=2) as second:
        refused = await second.put_events([make_event(long_properties={"c": 3})])
        known = await second.put_events([make_event(long_properties={"a": 5})])

    assert stored_response.status_code == 202
    assert refused.status_code == 400
    assert refused.json()["parameters"]["errors"][0]["path"] == "$[0].long-properties.c"
    assert known.status_code == 202
    assert len(stored()) == 2


def test_sigterm_lets_the_request_in_flight_finish(proxy: Proxy, prefix: str, stored: Any) -> None:
    """HQ stops accepting, answers the request Elasticsearch is still working on, then exits."""
    env = hq_environ(
        LOGSPACE_ES_URL=proxy.url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX=prefix,
    )
    base, server = start_hq(env)
    url = f"{base}/events"
    try:
        proxy.delay = 2
        result: dict[str, httpx.Response] = {}
        event = make_event()
        sender = threading.Thread(
            target=lambda: result.update(
                response=httpx.put(
                    url,
                    content=orjson.dumps([event]),
                    headers={"logspace.space-token": "development"},
                    timeout=30,
                )
            )
        )
        sender.start()
        time.sleep(0.5)  # the request is now waiting on Elasticsearch
        server.send_signal(signal.SIGTERM)
        sender.join(30)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()

    assert result["response"].status_code == 202
    assert "Waiting for connections to close" in output or "Shutting down" in output
    assert [e["id"] for e in stored()] == [event["id"]]
    with pytest.raises(httpx.ConnectError):
        httpx.put(url, content=b"[]", timeout=2)


# -- Elasticsearch stopped and restarted under load -------------------------------------


@contextmanager
def own_node() -> Iterator[LocalNode]:
    """A node of this test's own on free ports (suites running at once do not meet), which it
    may stop and start; stopped and its directory removed afterwards."""
    node = LocalNode.started_on_free_ports()
    try:
        yield node
    finally:
        with suppress(EsScriptError):
            node.stop()
        node.purge()


@pytest.fixture
def restartable_es() -> Iterator[LocalNode]:
    with own_node() as node:
        yield node


async def test_events_acknowledged_while_elasticsearch_restarts_are_stored_exactly_once(
    make_hq: Any, restartable_es: LocalNode, prefix: str
) -> None:
    """Four senders push overlapping batches (the same ids again and again) while the node is
    stopped and started. Every batch is sent again until it gets 202, as an agent would.
    Afterwards each acknowledged id is stored exactly once and nothing else is stored."""
    acknowledged: set[str] = set()
    outcomes: dict[int, int] = {}
    unexpected: list[str] = []
    stop = asyncio.Event()

    async with make_hq(es_url=restartable_es.url, es_retry_seconds=0.5, es_timeout=5) as hq:

        async def sender(number: int) -> None:
            sent = 0
            previous: list[dict[str, Any]] = []
            while not stop.is_set() or sent < 3:
                # Half of each batch repeats the previous batch: deliberate duplicates.
                batch = previous[:5] + [
                    make_event(id=f"s{number}-{sent}-{i}", timestamp="2022-02-02T00:00:00Z")
                    for i in range(10)
                ]
                while True:
                    response = await hq.put_events(batch)
                    outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        acknowledged.update(e["id"] for e in batch)
                        break
                    if response.status_code != 503:
                        unexpected.append(f"{response.status_code} {response.text}")
                        break
                    await asyncio.sleep(0.2)
                previous = batch[5:]
                sent += 1

        senders = [asyncio.create_task(sender(n)) for n in range(4)]
        await asyncio.sleep(2)
        await asyncio.to_thread(restartable_es.stop)
        await asyncio.sleep(1)
        await asyncio.to_thread(restartable_es.start)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*senders)

    with httpx.Client(base_url=restartable_es.url, timeout=30) as es:
        es.post(f"/{prefix}-*/_refresh").raise_for_status()
        counts = es.post(
            f"/{prefix}-*/_search",
            json={
                "size": 0,
                # Every id must get a bucket: a faster HQ stores more than 10000 in this time.
                "aggs": {"ids": {"terms": {"field": "id", "size": 65536}}},
            },
        ).json()
        es.delete(f"/{prefix}-*")
        es.delete(f"/_index_template/{prefix}")
        es.delete(f"/_component_template/{prefix}-*")

    per_id = {b["key"]: b["doc_count"] for b in counts["aggregations"]["ids"]["buckets"]}
    assert unexpected == []
    assert outcomes.get(503, 0) > 0, "the restart should have been noticed"
    assert set(per_id) == acknowledged
    assert set(per_id.values()) == {1}


# -- Elasticsearch's disk past its flood-stage watermark --------------------------------

# Free space no disk has: the node is past every watermark at the next disk check.
FLOOD = {
    "cluster.routing.allocation.disk.threshold_enabled": True,
    "cluster.routing.allocation.disk.watermark.low": "100000tb",
    "cluster.routing.allocation.disk.watermark.high": "99999tb",
    "cluster.routing.allocation.disk.watermark.flood_stage": "99998tb",
    "cluster.info.update.interval": "10s",
}


@pytest.fixture
def floodable_es() -> Iterator[str]:
    """A node of this test's own; it goes with its disk settings."""
    with own_node() as node:
        yield node.url


def flood(url: str, index: str) -> None:
    """Put the node past its flood-stage watermark; wait until `index` is made read-only."""
    with httpx.Client(base_url=url, timeout=60) as es:
        es.put("/_cluster/settings", json={"persistent": FLOOD}).raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            blocks = es.get(f"/{index}/_settings", params={"filter_path": "**.blocks"}).json()
            if blocks:
                return
            time.sleep(0.5)
    raise AssertionError(f"{index} did not get the flood-stage block")


async def test_a_full_disk_is_reported_in_elasticsearchs_own_words_and_soon(
    make_hq: Any, floodable_es: str, prefix: str
) -> None:
    """Past the flood-stage watermark, a write to an existing index answers 503 with the
    block, at once; one that needs a new monthly index, which Elasticsearch creates but cannot
    place, answers 503 with the allocation's reason once the retry window has passed (not
    after 30 s with "ConnectionTimeout")."""
    async with make_hq(es_url=floodable_es, es_retry_seconds=1.0, es_timeout=30) as hq:
        before = await hq.put_events([make_event(timestamp="2021-01-05T00:00:00Z")])
        await asyncio.to_thread(flood, floodable_es, f"{prefix}-development-2021.01")
        existing = await hq.put_events([make_event(timestamp="2021-01-06T00:00:00Z")])
        started = time.monotonic()
        new = await hq.put_events([make_event(timestamp="2021-02-06T00:00:00Z")])
        waited = time.monotonic() - started

    assert before.status_code == 202
    assert existing.status_code == 503
    assert existing.json()["parameters"]["reason"].startswith(
        "Elasticsearch could not take some events now: 429 cluster_block_exception: index "
        f"[{prefix}-development-2021.01] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
        "flood-stage watermark"
    )
    assert new.status_code == 503
    reason = new.json()["parameters"]["reason"]
    assert reason.startswith(
        f"index {prefix}-development-2021.02 has no primary shard and Elasticsearch cannot "
        "allocate one: disk_threshold: the node is above the high watermark"
    )
    assert reason in new.json()["message"]
    assert new.headers["retry-after"] == "1"
    assert waited < 30, "answered when HQ's own request timeout ran out"
