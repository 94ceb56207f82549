"""Per-event outcomes of a bulk request: only what Elasticsearch could not take now is sent
again; what it refuses for good is named; 202 only when everything is stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from logspace.testing import make_event

from ..fake_es import FakeBulk, serving

pytestmark = pytest.mark.anyio


async def put_through(
    fake: FakeBulk, make_hq: Any, events: list[dict[str, Any]], **changes: Any
) -> Any:
    with serving(fake) as url:
        async with make_hq(es_url=url, install_templates=False, **changes) as hq:
            return await hq.put_events(events)


async def test_only_the_events_elasticsearch_could_not_take_are_sent_again(make_hq: Any) -> None:
    events = [make_event(id=f"e{i}") for i in range(4)]
    fake = FakeBulk([[201, 429, 503, 409], [201, 429], [201]])

    response = await put_through(fake, make_hq, events)

    assert response.status_code == 202
    assert fake.requests == [["e0", "e1", "e2", "e3"], ["e1", "e2"], ["e2"]]


async def test_events_still_refused_after_the_retry_window_get_503(make_hq: Any) -> None:
    events = [make_event(id="a"), make_event(id="b")]
    fake = FakeBulk([[201, 429]] + [[429]] * 1000)

    response = await put_through(fake, make_hq, events, es_retry_seconds=0.3)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "STORE_UNAVAILABLE"
    assert body["parameters"]["unstored-event-count"] == 1
    assert all(ids == ["b"] for ids in fake.requests[1:])


async def test_events_refused_for_good_are_named_and_the_rest_stored(make_hq: Any) -> None:
    events = [make_event(id="ok"), make_event(id="bad"), make_event(id="late")]
    fake = FakeBulk([[201, 400, 503], [201]])

    response = await put_through(fake, make_hq, events)

    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "EVENTS_NOT_STORED"
    assert body["parameters"]["errors"] == [
        {"index": 1, "id": "bad", "status": 400, "error": "e400", "reason": "r"}
    ]
    assert fake.requests == [["ok", "bad", "late"], ["late"]]


async def test_refused_credentials_get_503_at_once(make_hq: Any) -> None:
    """An operator has to fix the credentials; HQ does not keep retrying."""
    fake = FakeBulk([], request_status=401)

    response = await put_through(fake, make_hq, [make_event()], es_retry_seconds=30)

    assert response.status_code == 503
    assert "Elasticsearch answered 401" in response.json()["message"]
    assert len(fake.requests) == 1


async def test_properties_not_readable_yet_are_asked_again_within_the_retry_window(
    make_hq: Any,
) -> None:
    """The first write of a month creates an index whose shards are not ready for a moment:
    reading the space's properties then is retried like a write, not answered with 503."""
    fake = FakeBulk(field_caps_statuses=[503, 503])

    response = await put_through(fake, make_hq, [make_event(long_properties={"n": 1})])

    assert response.status_code == 202
    assert fake.field_caps_calls == 3


async def test_properties_still_unreadable_after_the_retry_window_get_503(make_hq: Any) -> None:
    fake = FakeBulk(field_caps_statuses=[503] * 1000)

    response = await put_through(
        fake, make_hq, [make_event(long_properties={"n": 1})], es_retry_seconds=0.3
    )

    assert response.status_code == 503
    assert "Could not read the properties of space" in response.json()["message"]
    assert fake.requests == []


async def test_requests_that_find_the_property_cache_empty_together_share_one_read(
    make_hq: Any,
) -> None:
    """A fresh HQ under a fleet: every agent's batch brings properties HQ has not seen yet."""
    fake = FakeBulk(field_caps_delay=0.3)
    with serving(fake) as url:
        async with make_hq(es_url=url, install_templates=False) as hq:
            responses = await asyncio.gather(
                *(hq.put_events([make_event(long_properties={f"p{i}": i})]) for i in range(40))
            )

    assert [r.status_code for r in responses] == [202] * 40
    assert fake.field_caps_calls == 1
