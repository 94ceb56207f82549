"""Liveness, readiness and request ids, against the real node."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from logspace.app import create_app
from logspace.elastic.store import Store
from logspace.elastic.templates import load
from logspace.settings import Settings
from logspace.spaces.grants import Grant
from logspace.testing import MemoryStore, make_event

pytestmark = pytest.mark.anyio

UNREACHABLE = "http://127.0.0.1:9"


async def test_liveness_does_not_depend_on_elasticsearch(make_hq: Any) -> None:
    async with make_hq(es_url=UNREACHABLE) as hq:
        response = await hq.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "live"}


async def test_ready_when_elasticsearch_answers_and_the_templates_are_installed(hq: Any) -> None:
    response = await hq.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_not_ready_while_elasticsearch_is_unreachable(make_hq: Any) -> None:
    async with make_hq(es_url=UNREACHABLE) as hq:
        response = await hq.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["type"] == "NOT_READY"
    assert list(body["parameters"]) == ["elasticsearch"]
    assert "could not be reached" in body["parameters"]["elasticsearch"]


async def test_not_ready_until_the_templates_are_installed(
    make_hq: Any, settings: Any, prefix: str
) -> None:
    """With template installation off, HQ is ready only once someone installs them."""
    async with make_hq(install_templates=False) as hq:
        before = await hq.get("/health/ready")
        store = Store(settings)
        try:
            await store.install_templates()
        finally:
            await store.close()
        after = await hq.get("/health/ready")

    assert before.status_code == 503
    assert before.json()["parameters"] == {
        "templates": f"component template {prefix}-mappings is missing; "
        f"component template {prefix}-settings is missing; "
        f"index template {prefix} is missing"
    }
    assert after.status_code == 200


async def test_an_older_template_version_is_not_ready_and_a_newer_one_is(
    make_hq: Any, es: httpx.Client, prefix: str
) -> None:
    """A newer version may come from a newer HQ during a rolling upgrade; it is fine."""
    (mappings, *_) = load(prefix)
    async with make_hq() as hq:
        older = mappings.body | {"version": mappings.version - 1}
        es.put(f"/_component_template/{mappings.name}", json=older).raise_for_status()
        outdated = await hq.get("/health/ready")
        newer = mappings.body | {"version": mappings.version + 1}
        es.put(f"/_component_template/{mappings.name}", json=newer).raise_for_status()
        upgraded = await hq.get("/health/ready")

    assert outdated.status_code == 503
    assert outdated.json()["parameters"] == {
        "templates": f"component template {mappings.name} is at version "
        f"{mappings.version - 1}, HQ needs {mappings.version}"
    }
    assert upgraded.status_code == 200


async def test_health_endpoints_answer_get_only(hq: Any) -> None:
    response = await hq.post("/health/ready")

    assert response.status_code == 405
    assert response.json()["type"] == "METHOD_NOT_ALLOWED"


async def test_every_answer_carries_a_request_id(hq: Any) -> None:
    """A plain id from the caller (e.g. nginx's $request_id) is kept; anything else is replaced."""
    fresh = await hq.put_events([])
    kept = await hq.get("/health/live", headers={"x-request-id": "abc-123.def"})
    replaced = await hq.get("/health/live", headers={"x-request-id": "no spaces <allowed>"})
    failed = await hq.put_events([], token="not-a-token")

    assert len(fresh.headers["x-request-id"]) == 32
    assert kept.headers["x-request-id"] == "abc-123.def"
    assert replaced.headers["x-request-id"] not in ("", "no spaces <allowed>")
    assert failed.status_code == 403
    assert failed.headers["x-request-id"]


class BrokenStore(MemoryStore):
    async def write(self, events: Any, space: str) -> Any:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_answers_500_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(space_tokens={"t": Grant("s")}), store=BrokenStore())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://hq") as hq,
    ):
        response = await hq.put(
            "/events", json=[make_event()], headers={"logspace.space-token": "t"}
        )

    assert response.status_code == 500
    assert response.json()["type"] == "INTERNAL_ERROR"
    assert len(response.headers["x-request-id"]) == 32
    assert "unexpected error on PUT /events" in caplog.text
