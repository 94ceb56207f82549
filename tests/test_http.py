"""HQ's HTTP surface with an in-memory store: every answer has the one error shape, and no
request, however malformed, gets a 500."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logspace.app import create_app
from logspace.settings import Settings
from logspace.spaces.grants import Grant
from logspace.testing import MemoryStore, make_event

pytestmark = pytest.mark.anyio

SETTINGS = Settings(space_tokens={"development": Grant("development")}, max_body_bytes=4096)


@pytest.fixture
async def app_and_store() -> AsyncIterator[tuple[Any, MemoryStore]]:
    store = MemoryStore()
    app = create_app(SETTINGS, store=store)
    async with app.router.lifespan_context(app):
        yield app, store


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hq")


async def test_events_reach_the_store_under_the_tokens_space(app_and_store: Any) -> None:
    app, store = app_and_store
    event = make_event()
    async with client(app) as hq:
        response = await hq.put(
            "/events",
            content=orjson.dumps([event]),
            headers={"logspace.space-token": "development"},
        )

    assert response.status_code == 202
    assert store.events["development"][0]["id"] == event["id"]


async def test_a_body_over_the_limit_gets_413_without_reaching_the_store(
    app_and_store: Any,
) -> None:
    app, store = app_and_store
    body = orjson.dumps([make_event(string_properties={"s": "x" * 5000})])
    async with client(app) as hq:
        response = await hq.put(
            "/events", content=body, headers={"logspace.space-token": "development"}
        )

    assert response.status_code == 413
    assert response.json() == {
        "type": "REQUEST_TOO_LARGE",
        "message": "The request body is larger than 4096 bytes; send fewer events per request.",
        "parameters": {"max-body-bytes": 4096},
    }
    assert store.events == {}


async def test_a_body_streamed_without_length_is_cut_off_at_the_limit(app_and_store: Any) -> None:
    app, _ = app_and_store

    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(100):
            yield b" " * 100

    async with client(app) as hq:
        response = await hq.put(
            "/events", content=chunks(), headers={"logspace.space-token": "development"}
        )

    assert response.status_code == 413


async def test_compressed_bodies_are_refused_clearly(app_and_store: Any) -> None:
    app, _ = app_and_store
    async with client(app) as hq:
        response = await hq.put(
            "/events",
            content=b"[]",
            headers={"logspace.space-token": "development", "content-encoding": "br"},
        )

    assert response.status_code == 415
    assert response.json()["type"] == "UNSUPPORTED_CONTENT_ENCODING"


async def test_the_token_is_checked_before_the_body_is_read(app_and_store: Any) -> None:
    app, _ = app_and_store
    async with client(app) as hq:
        response = await hq.put(
            "/events", content=b"not json", headers={"logspace.space-token": "x"}
        )

    assert response.status_code == 403
    assert response.json()["type"] == "INVALID_SPACE_TOKEN"


async def test_an_unavailable_store_answers_503_with_retry_after(
    app_and_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, store = app_and_store
    store.unavailable = True
    async with client(app) as hq:
        response = await hq.put(
            "/events",
            content=orjson.dumps([make_event()]),
            headers={"logspace.space-token": "development"},
        )

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "STORE_UNAVAILABLE"
    # The operator learns why from the log, not only that it happened.
    assert [r.getMessage() for r in caplog.records if r.name == "logspace.app"] == [
        "503 STORE_UNAVAILABLE: The memory store is set to be unavailable."
    ]


@pytest.mark.parametrize(
    ("method", "path", "status", "type_"),
    [
        ("DELETE", "/events", 405, "METHOD_NOT_ALLOWED"),
        ("PATCH", "/api/events", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/event", 404, "NOT_FOUND"),
        ("PUT", "/events/", 404, "NOT_FOUND"),
        ("GET", "/", 404, "NOT_FOUND"),
    ],
)
async def test_unknown_routes_and_methods_get_json_errors(
    app_and_store: Any, method: str, path: str, status: int, type_: str
) -> None:
    app, _ = app_and_store
    async with client(app) as hq:
        response = await hq.request(method, path)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == type_
    assert set(body) == {"type", "message", "parameters"}


header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


json_bodies = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "type", "system", "agent-id", "timestamp", "long-properties"])
        | st.text(max_size=12),
        st.text(max_size=5) | st.integers(-(2**63), 2**63 - 1) | st.none(),
    ),
    max_size=3,
).map(orjson.dumps)
bodies = st.binary(max_size=600) | json_bodies
# Gzip bodies whole, cut short, or with bytes flipped.
gzip_bodies = st.tuples(bodies.map(gzip.compress), st.integers(0, 40), st.binary(max_size=3)).map(
    lambda t: t[0][: len(t[0]) - t[1]] + t[2]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies | gzip_bodies,
    token=st.none() | st.just("development") | header_values,
    authorization=st.none() | st.just("Bearer development") | header_values,
    encoding=st.none() | st.sampled_from(["identity", "gzip", "x-gzip", "", "IDENTITY ", "br"]),
    path=st.sampled_from(["/events", "/api/events"]),
)
async def test_no_request_gets_a_500(
    app_and_store: Any,
    body: bytes,
    token: str | None,
    authorization: str | None,
    encoding: str | None,
    path: str,
) -> None:
    app, _ = app_and_store
    headers = {}
    if token is not None:
        headers["logspace.space-token"] = token
    if authorization is not None:
        headers["authorization"] = authorization
    if encoding is not None:
        headers["content-encoding"] = encoding
    async with client(app) as hq:
        response = await hq.put(path, content=body, headers=headers)

    assert response.status_code in {202, 400, 403, 413, 415}
    if response.status_code != 202:
        error = response.json()
        assert {"type", "message"} <= set(error) <= {"type", "message", "parameters"}


async def test_a_bearer_token_is_accepted_for_proxies_that_drop_dotted_headers(
    app_and_store: Any,
) -> None:
    app, store = app_and_store
    async with client(app) as hq:
        response = await hq.put(
            "/events",
            content=orjson.dumps([make_event()]),
            headers={"authorization": "Bearer development"},
        )

    assert response.status_code == 202
    assert len(store.events["development"]) == 1


async def test_a_read_only_token_cannot_write() -> None:
    store = MemoryStore()
    app = create_app(
        Settings(space_tokens={"reader": Grant("development", write=False)}), store=store
    )
    async with app.router.lifespan_context(app), client(app) as hq:
        response = await hq.put(
            "/events", content=b"[]", headers={"logspace.space-token": "reader"}
        )

    assert response.status_code == 403
    assert response.json() == {
        "type": "ACCESS_DENIED",
        "message": "This space-token may not write events of space 'development'.",
        "parameters": {"space": "development", "access": "write"},
    }
    assert store.events == {}
