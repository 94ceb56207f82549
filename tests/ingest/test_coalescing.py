"""Concurrent requests share bulk requests, and each is still answered from its own events
alone: against the real node (slowed by a proxy, so that requests gather behind a bulk in
flight), and against a scripted `_bulk` for the answers a single node will not give on demand."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from logspace.app import create_app
from logspace.settings import Settings
from logspace.testing import make_event

from ..conftest import HQClient
from ..fake_es import FakeBulk, serving
from ..hqserving import served_client
from ..processes import hq_environ, start_hq
from ..proxy import Proxy, proxy_to
from ..scraping import scrape

pytestmark = pytest.mark.anyio

# Long enough for the requests of a test to gather behind the bulk held this long.
HELD = 1.5


@pytest.fixture(params=["asgi", "protocol"])
def make_hq(request: pytest.FixtureRequest, make_hq: Any, settings: Settings) -> Any:
    """HQ with some settings changed, in process through its ASGI app, or served as
    `logspace serve` serves it: its protocol answers the usual request from the store's
    callback rather than from a coroutine, and must answer alike."""
    if request.param == "asgi":
        return make_hq

    def build(**changes: Any) -> Any:
        return served_client(replace(settings, **changes))

    return build


@pytest.fixture
def proxy(es_url: str) -> Iterator[Proxy]:
    with proxy_to(es_url) as proxy:
        yield proxy


async def bulks_sent(hq: Any, count: int) -> None:
    """Wait until HQ has sent `count` bulk requests (the last may still be in flight)."""
    for _ in range(500):
        if (await scrape(hq)).value("logspace_bulk_request_events_count") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"HQ did not send {count} bulk requests")


async def behind_a_held_bulk(hq: Any, proxy: Proxy, *batches: list[dict[str, Any]]) -> list[Any]:
    """Send a first request and hold its bulk; send `batches` meanwhile; all the answers."""
    sent = (await scrape(hq)).value("logspace_bulk_request_events_count")
    proxy.delay = HELD
    first = asyncio.create_task(hq.put_events([make_event()]))
    await bulks_sent(hq, int(sent) + 1)
    rest = [asyncio.create_task(hq.put_events(batch)) for batch in batches]
    return list(await asyncio.gather(first, *rest))


async def test_an_event_elasticsearch_refuses_fails_only_its_own_request(
    make_hq: Any, proxy: Proxy, es: httpx.Client, prefix: str, stored: Any
) -> None:
    """Two requests in one bulk; Elasticsearch refuses an event of one (its index is closed):
    that one gets 422 naming the event by its own position, the other 202."""
    async with make_hq(es_url=proxy.url, bulk_concurrency=1, es_timeout=60) as hq:
        assert (await hq.put_events([make_event(timestamp="2015-05-18T14:07:00Z")])).is_success
        es.post(f"/{prefix}-development-2015.05/_close").raise_for_status()
        good = [make_event(), make_event()]
        bad = [
            make_event(timestamp="2015-06-01T00:00:00Z"),
            make_event(timestamp="2015-05-19T00:00:00Z"),  # the closed index
        ]

        first, accepted, refused = await behind_a_held_bulk(hq, proxy, good, bad)
        metrics = await scrape(hq)

    assert (first.status_code, accepted.status_code, refused.status_code) == (202, 202, 422)
    assert refused.json()["type"] == "EVENTS_NOT_STORED"
    assert refused.json()["parameters"]["errors"] == [
        {
            "index": 1,
            "id": bad[1]["id"],
            "status": 400,
            "error": "index_closed_exception",
            "reason": "closed",
        }
    ]
    # One bulk for the first event, one for the held one, one shared by the two requests.
    assert metrics.value("logspace_bulk_request_events_count") == 3
    assert metrics.value("logspace_bulk_request_events_sum") == 1 + 1 + 4
    assert metrics.value("logspace_bulk_request_events_bucket", le="5.0") == 3
    assert metrics.value("logspace_bulk_request_bytes_count") == 3
    assert metrics.value("logspace_bulk_wait_seconds_count") == 4  # once per request
    # The two waited for the held bulk to be answered.
    assert metrics.value("logspace_bulk_wait_seconds_bucket", le="1.0") == 2
    assert metrics.value("logspace_bulk_flushes_total", reason="idle") == 3
    ids = {e["id"] for e in stored()}
    assert {e["id"] for e in good} | {bad[0]["id"]} <= ids
    assert bad[1]["id"] not in ids


async def test_items_elasticsearch_cannot_take_now_are_retried_for_their_own_request_only(
    make_hq: Any,
) -> None:
    """One bulk carries three requests: a 429 of one request's event is sent again and
    stored (202); a 503 that lasts fails only its request (503); a 400 only its own (422)."""
    fake = FakeBulk(per_id={"a1": [429, 201], "b1": [503], "c0": [400]}, delays=[0.5])
    batches = {
        "a": [make_event(id="a0"), make_event(id="a1")],
        "b": [make_event(id="b0"), make_event(id="b1")],
        "c": [make_event(id="c0")],
    }
    with serving(fake) as url:
        async with make_hq(
            es_url=url, install_templates=False, bulk_concurrency=1, es_retry_seconds=1.5
        ) as hq:
            first = asyncio.create_task(hq.put_events([make_event(id="first")]))
            while not fake.requests:  # noqa: ASYNC110 - the fake's own record
                await asyncio.sleep(0.01)
            tasks = {name: asyncio.create_task(hq.put_events(b)) for name, b in batches.items()}
            answers = {name: await task for name, task in tasks.items()}
            assert (await first).status_code == 202

    assert {name: a.status_code for name, a in answers.items()} == {"a": 202, "b": 503, "c": 422}
    assert answers["b"].json()["parameters"]["unstored-event-count"] == 1
    assert answers["c"].json()["parameters"]["errors"] == [
        {"index": 0, "id": "c0", "status": 400, "error": "e400", "reason": "r"}
    ]
    assert fake.requests[0] == ["first"]
    assert sorted(fake.requests[1]) == ["a0", "a1", "b0", "b1", "c0"]
    retried = [event_id for request in fake.requests[2:] for event_id in request]
    assert set(retried) == {"a1", "b1"}
    assert retried.count("a1") == 1


async def test_a_bulk_refused_as_a_whole_is_sent_again_request_by_request(make_hq: Any) -> None:
    """A 400 for the whole bulk may be one request's doing: each request is sent again
    alone, and only the request that causes it gets the 503."""
    fake = FakeBulk(poison=frozenset({"p0"}), delays=[0.5])
    with serving(fake) as url:
        async with make_hq(es_url=url, install_templates=False, bulk_concurrency=1) as hq:
            first = asyncio.create_task(hq.put_events([make_event(id="first")]))
            while not fake.requests:  # noqa: ASYNC110 - the fake's own record
                await asyncio.sleep(0.01)
            clean = asyncio.create_task(hq.put_events([make_event(id="a0")]))
            poisoned = asyncio.create_task(hq.put_events([make_event(id="p0")]))
            answers = [await first, await clean, await poisoned]
            metrics = await scrape(hq)

    assert [a.status_code for a in answers] == [202, 202, 503]
    assert "Elasticsearch answered 400" in answers[2].json()["message"]
    assert sorted(fake.requests[1]) == ["a0", "p0"]
    assert sorted(fake.requests[2:]) == [["a0"], ["p0"]]
    assert metrics.value("logspace_bulk_flushes_total", reason="alone") == 2


async def test_the_in_flight_budget_holds_for_requests_waiting_to_share_a_bulk(
    make_hq: Any, proxy: Proxy, stored: Any
) -> None:
    """Requests waiting for a bulk hold their bytes: past the budget others get 503 at once,
    and the waiting ones share one bulk once the held one is answered."""
    body = orjson.dumps([make_event(string_properties={"s": "x" * 2000}) for _ in range(5)])
    async with make_hq(
        es_url=proxy.url, max_inflight_bytes=len(body) * 3, bulk_concurrency=1, es_timeout=60
    ) as hq:
        assert (await hq.put_events(body)).status_code == 202  # the property exists now
        proxy.delay = HELD
        held = [asyncio.create_task(hq.put_events(body)) for _ in range(3)]
        while hq.app.state.hq.admission.in_flight < len(body) * 3:  # noqa: ASYNC110 - HQ's own count
            await asyncio.sleep(0.01)

        refused = [await hq.put_events(body) for _ in range(5)]
        still_in_flight = sum(not task.done() for task in held)
        accepted = await asyncio.gather(*held)
        metrics = await scrape(hq)

    assert [r.status_code for r in refused] == [503] * 5
    assert {r.json()["type"] for r in refused} == {"OVERLOADED"}
    assert still_in_flight == 3
    assert [r.status_code for r in accepted] == [202] * 3
    assert hq.app.state.hq.admission.in_flight == 0
    # The first request, then one of the three alone, then the two that waited, together.
    assert metrics.value("logspace_bulk_request_events_count") == 3
    assert metrics.value("logspace_bulk_request_events_bucket", le="5.0") == 2
    assert len(stored()) == 5  # every body carries the same five events


async def test_a_request_arriving_during_shutdown_is_stored_and_one_after_it_refused(
    settings: Settings, proxy: Proxy, stored: Any
) -> None:
    """Shutdown sends what waits at once and answers every request it has taken, one that
    arrives meanwhile included; after it, a write gets 503 with Retry-After."""
    app = create_app(replace(settings, es_url=proxy.url, bulk_concurrency=1, es_timeout=60))
    transport = httpx.ASGITransport(app=app)
    async with HQClient(transport=transport, base_url="http://hq") as hq:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        before, during = [make_event()], [make_event()]
        proxy.delay = HELD
        held = asyncio.create_task(hq.put_events(before))
        await bulks_sent(hq, 1)
        stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await asyncio.sleep(0.2)
        arriving = await hq.put_events(during)
        await stopping
        after = await hq.put_events([make_event()])
        metrics = await scrape(hq)

    assert (await held).status_code == 202
    assert arriving.status_code == 202
    assert after.status_code == 503
    assert after.json()["parameters"]["reason"] == "HQ is shutting down"
    assert after.headers["retry-after"]
    assert metrics.value("logspace_bulk_flushes_total", reason="shutdown") == 1
    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in before + during)


def test_sigterm_answers_every_request_of_a_shared_bulk(
    proxy: Proxy, prefix: str, stored: Any
) -> None:
    """A real `logspace serve`: two requests wait behind a bulk in flight when SIGTERM
    comes; all three are stored and answered 202 before HQ exits."""
    env = hq_environ(
        LOGSPACE_ES_URL=proxy.url,
        LOGSPACE_SPACE_TOKENS="development:development",
        LOGSPACE_INDEX_PREFIX=prefix,
        LOGSPACE_BULK_CONCURRENCY="1",
    )
    base, server = start_hq(env)
    events = [make_event() for _ in range(3)]
    answers: dict[str, int] = {}

    def send(event: dict[str, Any]) -> None:
        response = httpx.put(
            f"{base}/events",
            content=orjson.dumps([event]),
            headers={"logspace.space-token": "development"},
            timeout=30,
        )
        answers[event["id"]] = response.status_code

    try:
        proxy.delay = 2
        senders = [threading.Thread(target=send, args=(event,)) for event in events]
        for sender in senders:
            sender.start()
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        for sender in senders:
            sender.join(30)
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()

    assert answers == {event["id"]: 202 for event in events}
    assert sorted(e["id"] for e in stored()) == sorted(e["id"] for e in events)
