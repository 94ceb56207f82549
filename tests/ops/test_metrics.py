"""Prometheus metrics at GET /metrics, against the real node."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from logspace.testing import make_event

from ..scraping import scrape

pytestmark = pytest.mark.anyio

SEED_REQUEST = (Path(__file__).parent.parent / "data" / "seed-request.json").read_bytes()


async def test_requests_and_events_are_counted_by_space_and_outcome(hq: Any) -> None:
    """Stored now counts as accepted, stored before as duplicate, an invalid batch as rejected;
    a request without a valid token has no space."""
    assert (await hq.put_events(SEED_REQUEST)).status_code == 202
    assert (await hq.put_events(SEED_REQUEST)).status_code == 202
    invalid = [make_event(), make_event(), {"id": "no-type"}]
    assert (await hq.put_events(invalid, token="token-of-b")).status_code == 400
    assert (await hq.put_events([], token=None)).status_code == 403
    assert (await hq.put_events([], token="unknown")).status_code == 403

    metrics = await scrape(hq)

    requests = "logspace_requests_total"
    assert metrics.value(requests, space="development", outcome="accepted") == 2
    assert metrics.value(requests, space="b", outcome="invalid_events") == 1
    assert metrics.value(requests, space="", outcome="missing_space_token") == 1
    assert metrics.value(requests, space="", outcome="invalid_space_token") == 1
    events = "logspace_events_total"
    assert metrics.value(events, space="development", outcome="accepted", reason="") == 2
    assert metrics.value(events, space="development", outcome="duplicate", reason="") == 2
    assert metrics.value(events, space="b", outcome="rejected", reason="invalid") == 3
    assert metrics.value("logspace_bulk_write_seconds_count") == 2
    assert metrics.value("logspace_requests_in_flight") == 0
    assert metrics.value("logspace_events_in_flight") == 0


async def test_a_scrape_sees_the_requests_and_events_in_flight_now(
    hq: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest path counts in plain numbers and hands them over once per event-loop
    iteration; a scrape takes them first, so it always sees the present."""
    store = hq.app.state.hq.store
    writing, release = asyncio.Event(), asyncio.Event()
    write = store.write

    async def held(events: Any, space: str) -> Any:
        writing.set()
        await release.wait()
        return await write(events, space)

    monkeypatch.setattr(store, "write", held)
    putting = asyncio.create_task(hq.put_events([make_event(), make_event(), make_event()]))
    await writing.wait()
    during = await scrape(hq)
    release.set()
    assert (await putting).status_code == 202
    after = await scrape(hq)

    assert during.value("logspace_requests_in_flight") == 1
    assert during.value("logspace_events_in_flight") == 3
    assert after.value("logspace_requests_in_flight") == 0
    assert after.value("logspace_events_in_flight") == 0
    accepted = {"space": "development", "outcome": "accepted"}
    assert after.value("logspace_requests_total", **accepted) == 1
    assert after.value("logspace_events_total", **accepted, reason="") == 3


async def test_tokens_never_appear_in_metrics(hq: Any) -> None:
    await hq.put_events([], token="some-secret-token")
    await hq.put_events([make_event()], token="development")

    text = (await hq.get("/metrics")).text

    assert "some-secret-token" not in text
    assert 'token="' not in text
    assert 'space="development"' in text


async def test_events_elasticsearch_refuses_are_rejected_and_the_rest_accepted(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    """A closed index refuses its events for good (422); the batch's other events are stored."""
    first = make_event(timestamp="2015-05-18T14:07:00Z")
    assert (await hq.put_events([first])).status_code == 202
    es.post(f"/{prefix}-development-2015.05/_close").raise_for_status()
    batch = [
        make_event(timestamp="2015-05-18T14:08:00Z"),
        make_event(timestamp="2015-06-18T14:08:00Z"),
        make_event(timestamp="2015-06-18T14:09:00Z"),
    ]

    response = await hq.put_events(batch)
    metrics = await scrape(hq)

    assert response.status_code == 422
    events = "logspace_events_total"
    assert metrics.value(events, space="development", outcome="rejected", reason="refused") == 1
    assert metrics.value(events, space="development", outcome="accepted", reason="") == 1 + 2
    assert metrics.value("logspace_elasticsearch_errors_total", operation="write", reason="refused")
    assert metrics.value(
        "logspace_requests_total", space="development", outcome="events_not_stored"
    )


async def test_an_unreachable_elasticsearch_is_counted(make_hq: Any) -> None:
    """Events HQ could not store are rejected as unavailable; readiness failures count too."""
    async with make_hq(es_url="http://127.0.0.1:9", es_retry_seconds=0.2) as hq:
        response = await hq.put_events([make_event(), make_event()])
        await hq.get("/health/ready")
        metrics = await scrape(hq)

    assert response.status_code == 503
    events = "logspace_events_total"
    assert metrics.value(events, space="development", outcome="rejected", reason="unavailable") == 2
    assert metrics.value(events, space="development", outcome="accepted", reason="") == 0
    errors = "logspace_elasticsearch_errors_total"
    assert metrics.value(errors, operation="write", reason="unavailable") == 1
    assert metrics.value(errors, operation="readiness", reason="unavailable") == 1
    assert metrics.value("logspace_bulk_write_seconds_count") == 1
    assert metrics.value("logspace_events_in_flight") == 0


async def test_a_token_refused_for_writing_is_counted_under_its_space(hq: Any) -> None:
    """Its space is known, so it is not counted with the missing and unknown tokens."""
    refused = await hq.put_events([make_event()], token="reader-of-b")

    metrics = await scrape(hq)

    assert refused.status_code == 403
    assert refused.json()["type"] == "ACCESS_DENIED"
    requests = "logspace_requests_total"
    assert metrics.value(requests, space="b", outcome="access_denied") == 1
    assert metrics.value(requests, space="", outcome="access_denied") == 0


async def test_reads_are_counted_and_timed_per_endpoint_space_and_outcome(hq: Any) -> None:
    reader = {"logspace.space-token": "reader-of-b"}
    writer = {"logspace.space-token": "second-of-b"}
    window = {"start": "2015-05-18T00:00:00Z", "end": "2015-05-19T00:00:00Z", "gap": 3600}
    answers = [
        await hq.get("/events", headers=reader),
        await hq.post("/api/events", json={"size": 1}, headers=reader),
        await hq.get("/events", params={"size": "x"}, headers=reader),
        await hq.get("/events/export", params={"format": "csv"}, headers=reader),
        await hq.post("/time-series", json={**window, "definitions": [{}]}, headers=reader),
        await hq.get("/suggestions", headers=writer),
        await hq.get("/agent-activity", headers={"logspace.space-token": "unknown"}),
    ]

    metrics = await scrape(hq)

    assert [a.status_code for a in answers] == [200, 200, 400, 200, 200, 403, 403]
    reads = "logspace_read_requests_total"
    assert metrics.value(reads, endpoint="search", space="b", outcome="ok") == 2
    assert metrics.value(reads, endpoint="search", space="b", outcome="invalid_parameter") == 1
    assert metrics.value(reads, endpoint="export", space="b", outcome="ok") == 1
    assert metrics.value(reads, endpoint="time-series", space="b", outcome="ok") == 1
    assert metrics.value(reads, endpoint="suggestions", space="b", outcome="access_denied") == 1
    assert (
        metrics.value(reads, endpoint="agent-activity", space="", outcome="invalid_space_token")
        == 1
    )
    assert metrics.value("logspace_read_seconds_count", endpoint="search") == 3
    assert metrics.value("logspace_read_seconds_count", endpoint="export") == 1
    assert metrics.value("logspace_requests_total", space="b", outcome="accepted") == 0


async def test_elasticsearch_failures_on_reads_are_counted(make_hq: Any) -> None:
    async with make_hq(es_url="http://127.0.0.1:9") as hq:
        response = await hq.get("/events", headers={"logspace.space-token": "development"})
        metrics = await scrape(hq)

    assert response.status_code == 503
    errors = "logspace_elasticsearch_errors_total"
    assert metrics.value(errors, operation="read", reason="unavailable") == 1
    reads = "logspace_read_requests_total"
    assert metrics.value(reads, endpoint="search", space="development", outcome="store_unavailable")


async def test_metrics_need_the_metrics_token_when_one_is_set(make_hq: Any) -> None:
    """The metrics name every space, so an operator may keep them to the scraper."""
    async with make_hq(metrics_token="scrape-secret") as hq:
        missing = await hq.get("/metrics")
        space_token = await hq.get("/metrics", headers={"authorization": "Bearer development"})
        right = await hq.get("/metrics", headers={"authorization": "Bearer scrape-secret"})

    assert missing.status_code == 401
    assert missing.json()["type"] == "METRICS_TOKEN_REQUIRED"
    assert missing.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert space_token.status_code == 401
    assert right.status_code == 200
    assert "logspace_requests_total" in right.text


def test_observations_handed_over_at_once_read_as_if_each_was_observed() -> None:
    """The ingest path counts its durations by bucket and hands them to the histogram in one
    go; the exposition is what observing each one would have given, bounds included."""
    from random import Random

    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from logspace.ops.tally import Observations

    bounds = (0.001, 0.01, 0.1, 1.0)
    rng = Random(7)  # noqa: S311 - amounts to observe, not secrets
    amounts = [*bounds, 0.0, 5.0, *(rng.uniform(0, 2) for _ in range(500))]
    expositions = []
    for at_once in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("h_seconds", "h", buckets=bounds, registry=registry)
        observations = Observations(bounds)
        for number, amount in enumerate(amounts):
            if at_once:
                observations.add(amount)
                if number % 97 == 0:  # handed over several times, as the loop turns
                    observations.fold_into(histogram)
            else:
                histogram.observe(amount)
        observations.fold_into(histogram)
        observations.fold_into(histogram)  # nothing new: nothing added twice
        lines = generate_latest(registry).decode().splitlines()
        expositions.append(
            {
                name: float(value)
                for name, _, value in (line.rpartition(" ") for line in lines)
                if not name.startswith("#") and "_created" not in name
            }
        )
    one_by_one, at_once = expositions
    # The sum is added up in another order: equal but for the last digits.
    assert one_by_one.pop("h_seconds_sum") == pytest.approx(at_once.pop("h_seconds_sum"))
    assert one_by_one == at_once
    assert at_once['h_seconds_bucket{le="0.01"}'] > 0
