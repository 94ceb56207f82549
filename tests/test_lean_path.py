"""`PUT /events` goes past the router, the middleware layers and the response objects (the
lean path of `app.HQApp`); every answer, header and access line is the routed path's own.
Each request here goes through both, and the two must not differ in anything but timing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from logspace.app import create_app
from logspace.testing import MemoryStore

from .leanrequests import CASES, EVENTS, SETTINGS, TOKEN

pytestmark = pytest.mark.anyio


class _Failing(MemoryStore):
    """A store whose writes fail unexpectedly (a bug, not Elasticsearch being away)."""

    async def write(self, events: Any, space: str) -> Any:
        raise RuntimeError("a bug")


@pytest.fixture
async def apps() -> AsyncIterator[dict[str, Any]]:
    stores = {"memory": MemoryStore(), "failing": _Failing()}
    apps = {name: create_app(SETTINGS, store=store) for name, store in stores.items()}
    async with (
        apps["memory"].router.lifespan_context(apps["memory"]),
        apps["failing"].router.lifespan_context(apps["failing"]),
    ):
        yield {"stores": stores, "apps": apps}


def _routed(app: Any) -> Any:
    """The same app, with PUT /events taken by the router like any other request."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    return asgi


async def _both(
    app: Any,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
) -> list[tuple[int, list[tuple[bytes, bytes]], bytes, list[tuple[str, dict[str, Any]]]]]:
    answers = []
    for asgi in (app, _routed(app)):
        caplog.clear()
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hq") as client:
            response = await client.put(path, content=body, headers=headers)
        records = [
            (r.getMessage(), {k: v for k, v in r.__dict__["fields"].items() if k != "duration_ms"})
            for r in caplog.records
            if r.name == "logspace.access"
        ]
        answers.append((response.status_code, response.headers.raw, response.content, records))
    return answers


@pytest.mark.parametrize(("case", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_lean_path_answers_and_logs_as_the_routed_one(
    apps: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    case: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    lean, routed = await _both(apps["apps"]["memory"], caplog, path, body, headers)
    if "x-request-id" not in headers:  # a new id each time: only its place must match
        lean, routed = _without_id(lean), _without_id(routed)

    assert lean == routed
    assert len(lean[3]) == 1  # one access line each


@pytest.mark.parametrize(
    "tokens",
    [("development", "nope"), ("nope", "development")],
    ids=["valid first", "unknown first"],
)
async def test_a_header_sent_twice_counts_once_as_on_the_routed_path(
    apps: dict[str, Any], caplog: pytest.LogCaptureFixture, tokens: tuple[str, str]
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    headers = [("logspace.space-token", token) for token in tokens] + [("x-request-id", "t")]
    lean, routed = await _both(apps["apps"]["memory"], caplog, "/events", EVENTS, headers)

    assert lean == routed
    assert lean[0] == (202 if tokens[0] == "development" else 403)


async def test_a_refusal_before_the_body_is_read_closes_the_connection_on_both_paths(
    apps: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    lean, routed = await _both(apps["apps"]["memory"], caplog, "/events", EVENTS, {})

    assert lean[0] == routed[0] == 403
    assert (b"connection", b"close") in lean[1]
    assert _without_id(lean)[:3] == _without_id(routed)[:3]


async def test_a_store_unavailable_answers_503_with_retry_after_on_both_paths(
    apps: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    apps["stores"]["memory"].unavailable = True
    caplog.set_level(logging.INFO, logger="logspace.access")
    lean, routed = await _both(
        apps["apps"]["memory"], caplog, "/events", EVENTS, {**TOKEN, "x-request-id": "u"}
    )

    assert lean == routed
    assert lean[0] == 503
    assert orjson.loads(lean[2])["type"] == "STORE_UNAVAILABLE"


async def test_an_unexpected_error_answers_500_with_the_request_id_on_both_paths(
    apps: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.access")
    lean, routed = await _both(
        apps["apps"]["failing"], caplog, "/events", EVENTS, {**TOKEN, "x-request-id": "z"}
    )

    assert lean == routed
    assert lean[0] == 500
    assert (b"x-request-id", b"z") in lean[1]
    assert lean[3] == [
        (
            "PUT /events 500",
            {
                "method": "PUT",
                "path": "/events",
                "status": 500,
                "space": "development",
                "error": "INTERNAL_ERROR",
            },
        )
    ]


def _without_id(answer: Any) -> Any:
    status, headers, body, records = answer
    return (
        status,
        [(k, b"<id>" if k == b"x-request-id" else v) for k, v in headers],
        body,
        records,
    )
