"""HQ given several nodes of one cluster (`LOGSPACE_ES_URL` with commas): it spreads its
requests over them, passes over a node it cannot reach without a failed answer, and answers
503 only when no node can be reached. Two proxies to the one test node stand for two nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from logspace.elastic.client import connect
from logspace.settings import Settings
from logspace.testing import make_event

from ..proxy import Proxy, proxy_to

pytestmark = pytest.mark.anyio

READ = {"logspace.space-token": "development"}


@pytest.fixture
def two_nodes(es_url: str) -> Iterator[tuple[Proxy, Proxy]]:
    with proxy_to(es_url) as first, proxy_to(es_url) as second:
        yield first, second


async def test_requests_go_to_every_node(
    make_hq: Any, two_nodes: tuple[Proxy, Proxy], stored: Any
) -> None:
    first, second = two_nodes
    events = [make_event() for _ in range(10)]
    async with make_hq(es_url=f"{first.url},{second.url}") as hq:
        answers = [await hq.put_events([event]) for event in events]

    assert [a.status_code for a in answers] == [202] * 10
    assert first.accepted >= 1
    assert second.accepted >= 1
    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in events)


async def test_a_node_that_goes_down_is_passed_over_without_a_failed_answer(
    make_hq: Any, two_nodes: tuple[Proxy, Proxy], stored: Any
) -> None:
    """The first node goes down between writes, its open connections cut: every write, read
    and readiness check still succeeds, on the other node."""
    first, second = two_nodes
    before, after = [make_event() for _ in range(5)], [make_event() for _ in range(20)]
    async with make_hq(es_url=f"{first.url},{second.url}") as hq:
        answers = [await hq.put_events([event]) for event in before]
        first.go_down()
        answers += [await hq.put_events([event]) for event in after]
        ready = [(await hq.get("/health/ready")).status_code for _ in range(5)]
        reads = [(await hq.get("/events", headers=READ)).status_code for _ in range(5)]

    assert [a.status_code for a in answers] == [202] * 25
    assert ready == [200] * 5
    assert reads == [200] * 5
    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in before + after)


async def test_with_every_node_down_hq_answers_503_and_recovers_when_one_is_back(
    make_hq: Any, two_nodes: tuple[Proxy, Proxy], stored: Any
) -> None:
    first, second = two_nodes
    event = make_event()
    async with make_hq(es_url=f"{first.url},{second.url}", es_retry_seconds=0.5) as hq:
        first.go_down()
        second.go_down()
        down = await hq.put_events([event])
        read = await hq.get("/events", headers=READ)
        ready = await hq.get("/health/ready")
        second.refuse = False
        back = [await hq.put_events([event]) for _ in range(3)]

    assert (down.status_code, down.json()["type"]) == (503, "STORE_UNAVAILABLE")
    assert "retry-after" in down.headers
    assert (read.status_code, read.json()["type"]) == (503, "STORE_UNAVAILABLE")
    assert (ready.status_code, ready.json()["type"]) == (503, "NOT_READY")
    assert [b.status_code for b in back] == [202] * 3
    assert [e["id"] for e in stored()] == [event["id"]]


async def test_hq_talks_only_to_the_nodes_it_is_given(es_url: str) -> None:
    """No sniffing: after requests, the client's pool still holds exactly the configured
    nodes, whatever addresses the cluster publishes."""
    client = connect(Settings(space_tokens={}, es_url=f"{es_url},http://127.0.0.1:1"))
    try:
        for _ in range(4):
            await client.perform_request("GET", "/_cluster/health")
        nodes = sorted(node.base_url for node in client.transport.node_pool.all())
    finally:
        await client.close()

    assert nodes == sorted([es_url, "http://127.0.0.1:1"])


async def test_the_first_write_after_elasticsearch_was_unreachable_is_retried_as_any_write(
    make_hq: Any, es_url: str, stored: Any
) -> None:
    """After a failure HQ checks its index templates before the next write; a node that
    still turns the first connections away must not make that write fail at once."""
    event, later = make_event(), make_event()
    with proxy_to(es_url) as node:
        async with make_hq(es_url=node.url, es_retry_seconds=2.0) as hq:
            node.go_down()
            down = await hq.put_events([event])
            node.refuse, node.refuse_next = False, 3
            back = await hq.put_events([later])

    assert down.status_code == 503
    assert back.status_code == 202
    assert [e["id"] for e in stored()] == [later["id"]]
