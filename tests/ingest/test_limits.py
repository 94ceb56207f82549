"""Limits and hostile input, in process with an in-memory store: every limit answers with a
clear error, gzip is read within the limit, and HQ refuses work beyond its in-flight budget."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logspace.app import create_app
from logspace.body import Admission
from logspace.elastic.bulk import WriteOutcome
from logspace.errors import Overloaded
from logspace.settings import Settings
from logspace.spaces.grants import Grant
from logspace.testing import MemoryStore, make_event

pytestmark = pytest.mark.anyio

BASE = Settings(space_tokens={"development": Grant("development")})
TOKEN = {"logspace.space-token": "development"}


class HQ:
    """HQ in process on a MemoryStore, with some settings changed."""

    def __init__(self, store: MemoryStore | None = None, **changes: Any) -> None:
        self.store = store or MemoryStore()
        self.app = create_app(replace(BASE, **changes), store=self.store)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://hq"
        )

    async def __aenter__(self) -> HQ:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)

    async def put(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.put("/events", content=body, headers={**TOKEN, **(headers or {})})

    @property
    def hq(self) -> Any:
        return self.app.state.hq


def errors_of(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["path"], e["message"]) for e in response.json()["parameters"]["errors"]]


async def test_too_many_events_in_one_request_get_413() -> None:
    async with HQ(max_events=3) as hq:
        response = await hq.put(orjson.dumps([make_event() for _ in range(4)]))

    assert response.status_code == 413
    assert response.json() == {
        "type": "TOO_MANY_EVENTS",
        "message": "The batch has 4 events; at most 3 are accepted per request. "
        "Send them in smaller batches.",
        "parameters": {"event-count": 4, "max-events": 3},
    }
    assert hq.store.events == {}


async def test_too_many_properties_in_one_event_are_refused() -> None:
    event = make_event(long_properties={"a": 1, "b": 2}, string_properties={"c": "x"})
    async with HQ(max_properties=2) as hq:
        response = await hq.put(orjson.dumps([event]))

    assert response.status_code == 400
    assert errors_of(response) == [("$[0]", "an event may have at most 2 properties, found 3")]


async def test_property_names_and_string_values_have_a_length_limit() -> None:
    event = make_event(long_properties={"n" * 11: 1}, string_properties={"s": ["ok", "x" * 21]})
    async with HQ(max_property_name_length=10, max_string_length=20) as hq:
        response = await hq.put(orjson.dumps([event]))

    assert response.status_code == 400
    assert errors_of(response) == [
        (
            "$[0].long-properties.nnnnnnnnnnn",
            "property names must be at most 10 characters, found 11",
        ),
        ("$[0].string-properties.s", "string values must be at most 20 characters, found 21"),
    ]


async def test_timestamps_outside_the_window_are_refused() -> None:
    """Year 1900 or next year would create indices nobody keeps."""
    next_year = (datetime.now(UTC) + timedelta(days=366)).replace(microsecond=0)
    events = [
        make_event(timestamp="1900-01-01T00:00:00Z"),
        make_event(timestamp=next_year.isoformat()),
        make_event(timestamp="2000-01-01T00:00:00Z"),
        make_event(),
    ]
    async with HQ() as hq:
        response = await hq.put(orjson.dumps(events))

    assert response.status_code == 400
    problems = errors_of(response)
    assert problems[0] == (
        "$[0].timestamp",
        "timestamp 1900-01-01T00:00:00.000Z is older than the oldest accepted, "
        "2000-01-01T00:00:00.000Z",
    )
    assert problems[1][0] == "$[1].timestamp"
    assert problems[1][1].startswith(
        f"timestamp {next_year:%Y-%m-%dT%H:%M:%S}.000Z is in the future"
    )
    assert len(problems) == 2


async def test_nesting_deeper_than_the_event_format_is_refused() -> None:
    nested: Any = "x"
    for _ in range(200):
        nested = [nested]
    async with HQ() as hq:
        too_deep = await hq.put(b"[" * 5000 + b"]" * 5000)
        nested_value = await hq.put(orjson.dumps([make_event(string_properties={"s": nested})]))

    assert too_deep.status_code == 400
    assert too_deep.json()["type"] == "INVALID_JSON"
    assert nested_value.status_code == 400
    assert errors_of(nested_value) == [
        ("$[0].string-properties.s", "expected a string, found an array of 1")
    ]


async def test_a_gzip_body_is_accepted() -> None:
    events = [make_event(), make_event()]
    async with HQ() as hq:
        response = await hq.put(gzip.compress(orjson.dumps(events)), {"content-encoding": "gzip"})

    assert response.status_code == 202
    assert [e["id"] for e in hq.store.events["development"]] == [e["id"] for e in events]


async def test_the_body_limit_applies_to_the_decompressed_size() -> None:
    body = orjson.dumps([make_event(string_properties={"s": "x" * 5000})])
    compressed = gzip.compress(body)
    assert len(compressed) < 1000 < len(body)
    async with HQ(max_body_bytes=1000) as hq:
        response = await hq.put(compressed, {"content-encoding": "gzip"})

    assert response.status_code == 413
    assert response.json()["type"] == "REQUEST_TOO_LARGE"


async def test_a_gzip_bomb_is_refused_without_unpacking_it() -> None:
    """100 MB of zeros in 100 KB: HQ stops inflating at the limit."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    compressed = bomb.compress(b"0" * 100_000_000) + bomb.flush()
    assert len(compressed) < 200_000
    async with HQ(max_body_bytes=1_000_000) as hq:
        response = await hq.put(compressed, {"content-encoding": "gzip"})

    assert response.status_code == 413
    assert hq.hq.admission.peak <= 1_000_000 + 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "The body is not a valid gzip stream"),
        (gzip.compress(b"[]")[:-6], "The gzip body ends before the end of its compressed stream."),
        (gzip.compress(b"[]") + b"trailing", "The body has data after the end of its gzip stream."),
    ],
    ids=["garbage", "truncated", "trailing data"],
)
async def test_a_bad_gzip_stream_is_a_400(body: bytes, message: str) -> None:
    async with HQ() as hq:
        response = await hq.put(body, {"content-encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["type"] == "INVALID_GZIP"
    assert response.json()["message"].startswith(message)


async def test_a_space_cannot_create_more_properties_than_its_budget() -> None:
    """The event that would create the fourth property is refused, naming the property."""
    first = make_event(long_properties={"a": 1, "b": 2})
    second = make_event(long_properties={"a": 3}, double_properties={"c": 0.5})
    third = make_event(long_properties={"b": 4}, string_properties={"d": "x", "e": "y"})
    async with HQ(max_fields_per_space=3) as hq:
        assert (await hq.put(orjson.dumps([first]))).status_code == 202
        assert (await hq.put(orjson.dumps([second]))).status_code == 202
        response = await hq.put(orjson.dumps([third]))
        known = await hq.put(orjson.dumps([make_event(long_properties={"a": 9, "b": 9})]))

    assert response.status_code == 400
    assert errors_of(response) == [
        (
            "$[0].string-properties.d",
            "property 'string-properties.d' would be more than the 3 distinct properties "
            "space 'development' may have (3 exist)",
        ),
        (
            "$[0].string-properties.e",
            "property 'string-properties.e' would be more than the 3 distinct properties "
            "space 'development' may have (3 exist)",
        ),
    ]
    assert known.status_code == 202
    assert len(hq.store.events["development"]) == 3


class GatedStore(MemoryStore):
    """A store whose writes wait until the test opens the gate: requests stay in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Semaphore(0)

    async def write(self, events: Sequence[dict[str, Any]], space: str) -> WriteOutcome:
        self.entered.release()
        await self.gate.wait()
        return await super().write(events, space)


async def test_work_beyond_the_in_flight_budget_is_refused_at_once() -> None:
    """While Elasticsearch is slow, HQ holds at most its budget and answers 503 to the rest."""
    store = GatedStore()
    body = orjson.dumps([make_event(string_properties={"s": "x" * 3000})])
    async with HQ(store=store, max_inflight_bytes=len(body) * 3) as hq:
        held = [asyncio.create_task(hq.put(body)) for _ in range(3)]
        for _ in held:
            await store.entered.acquire()

        refused = [await hq.put(body) for _ in range(5)]
        store.gate.set()
        accepted = await asyncio.gather(*held)
        after = await hq.put(body)

    assert [r.status_code for r in refused] == [503] * 5
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["type"] == "OVERLOADED"
    assert [r.status_code for r in accepted] == [202] * 3
    assert after.status_code == 202
    assert hq.hq.admission.peak <= len(body) * 3
    assert hq.hq.admission.in_flight == 0


def test_the_budget_admits_one_request_even_when_it_alone_exceeds_it() -> None:
    admission = Admission(limit=10)
    admission.acquire(25)
    with pytest.raises(Overloaded):
        admission.acquire(1)
    admission.release(25)
    admission.acquire(10)
    assert admission.in_flight == 10


async def test_tokens_reload_from_their_file_without_dropping_requests(tmp_path: Path) -> None:
    """While requests keep coming, a token is added and one removed; none fails otherwise."""
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("# agents\nteam:old-token:write\nteam:kept-token\n")
    async with HQ(space_tokens={}, space_tokens_file=str(tokens_file)) as hq:
        statuses: dict[str, list[int]] = {"kept-token": [], "old-token": [], "new-token": []}
        reloaded = False

        async def send(token: str) -> None:
            response = await hq.client.put(
                "/events", content=b"[]", headers={"logspace.space-token": token}
            )
            statuses[token].append(response.status_code)
            assert response.status_code in (202, 403)

        for round_ in range(20):
            if round_ == 10:
                tokens_file.write_text("team:kept-token\nteam:new-token:write\n")
                reloaded = hq.hq.tokens.reload_if_changed()
            await asyncio.gather(*(send(t) for t in statuses for _ in range(3)))

    assert reloaded
    assert statuses["kept-token"] == [202] * 60
    assert statuses["old-token"] == [202] * 30 + [403] * 30
    assert statuses["new-token"] == [403] * 30 + [202] * 30


async def test_a_broken_tokens_file_keeps_the_tokens_in_force(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("team:good-token\n")
    async with HQ(space_tokens={}, space_tokens_file=str(tokens_file)) as hq:
        tokens_file.write_text("Not A Valid Line\n")
        assert hq.hq.tokens.reload_if_changed() is False
        response = await hq.client.put(
            "/events", content=b"[]", headers={"logspace.space-token": "good-token"}
        )

    assert response.status_code == 202


async def test_one_spaces_token_never_writes_into_another_space() -> None:
    async with HQ(space_tokens={"a-token": Grant("a"), "b-token": Grant("b")}) as hq:
        await hq.client.put(
            "/events",
            content=orjson.dumps([make_event()]),
            headers={"logspace.space-token": "a-token"},
        )

    assert list(hq.store.events) == ["a"]


async def test_the_budget_names_every_event_that_brings_a_property_too_many() -> None:
    """An agent that drops exactly the named events gets the rest stored."""
    events = [
        make_event(long_properties={"cpu.user": 1}),  # the one property that fits
        make_event(long_properties={"kept": 1}),
        make_event(long_properties={"cpu.user": 2, "kept": 2}),
    ]
    async with HQ(max_fields_per_space=1) as hq:
        refused = await hq.put(orjson.dumps(events))
        rest = await hq.put(orjson.dumps([events[0]]))

    assert refused.status_code == 400
    assert [e[0] for e in errors_of(refused)] == [
        "$[1].long-properties.kept",
        "$[2].long-properties.kept",
    ]
    assert rest.status_code == 202


async def test_an_empty_batch_needs_nothing_from_the_store() -> None:
    store = MemoryStore()
    store.unavailable = True
    async with HQ(store=store) as hq:
        response = await hq.put(b"[]")

    assert response.status_code == 202
