"""Fixtures: a real Elasticsearch node, and HQ wired to it under a prefix of its own per test.

Elasticsearch comes from `LOGSPACE_ES_URL`, else a testcontainers container where a Docker
engine answers, else the local node that `scripts/es start` provisions. If none can be had
the integration tests fail; they never skip.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from starlette.applications import Starlette

from logspace.app import create_app
from logspace.settings import Settings
from logspace.spaces.grants import Grant

# Fixtures for a cluster of several nodes and a node with security on: `es_cluster`, `secure_es`;
# and HQ on that node: `secure_prefix`, `secure_settings`.
pytest_plugins = ["tests.clusters", "tests.secure_hq"]

ROOT = Path(__file__).resolve().parent.parent
ES_VERSION = "9.5.4"  # keep in step with scripts/es

# No timing assertions in the suite: on a shared machine, or under the sanitizers (scripts/fuzz),
# an example can take past Hypothesis's default deadline of 200 ms without anything being wrong.
hypothesis.settings.register_profile("logspace", deadline=None)
hypothesis.settings.load_profile("logspace")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """Base URL of a real Elasticsearch node for this test session."""
    url = os.environ.get("LOGSPACE_ES_URL")
    if url:
        yield url.rstrip("/")
        return
    if _docker_engine_answers():
        from testcontainers.elasticsearch import ElasticSearchContainer

        image = f"docker.elastic.co/elasticsearch/elasticsearch:{ES_VERSION}"
        with ElasticSearchContainer(image, mem_limit="2g") as container:
            yield container.get_url()
        return
    started = subprocess.run(
        [str(ROOT / "scripts" / "es"), "start"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"could not start Elasticsearch with scripts/es:\n{started.stderr}")
    yield started.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on Elasticsearch, for tests to look at what HQ stored."""
    with httpx.Client(base_url=es_url, timeout=60) as client:
        yield client


@pytest.fixture
def prefix(es: httpx.Client) -> Iterator[str]:
    """An index prefix of this test's own; its indices and templates are removed afterwards."""
    name = f"lstest-{uuid.uuid4().hex[:10]}"
    yield name
    es.delete(f"/{name}-*", params={"expand_wildcards": "all"})
    es.delete(f"/_index_template/{name}")
    es.delete(f"/_component_template/{name}-*")
    es.delete(f"/{name}.control", params={"ignore_unavailable": "true"})


@pytest.fixture
def settings(es_url: str, prefix: str) -> Settings:
    return Settings(
        space_tokens={
            "development": Grant("development"),
            "token-of-b": Grant("b"),
            "second-of-b": Grant("b", read=False),
            "reader-of-b": Grant("b", write=False),
        },
        es_url=es_url,
        index_prefix=prefix,
        es_retry_seconds=2.0,
        # Outside `<prefix>-*`, as the setting requires; removed with the prefix's indices.
        control_index=f"{prefix}.control",
    )


class HQClient(httpx.AsyncClient):
    """An in-process HQ client with shortcuts for the event endpoint; `app` is HQ itself."""

    app: Starlette

    async def put_events(self, body: Any, token: str | None = "development") -> httpx.Response:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["logspace.space-token"] = token
        content = body if isinstance(body, bytes | str) else _dumps(body)
        return await self.put("/events", content=content, headers=headers)


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


async def _serve(app: Starlette) -> AsyncIterator[HQClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with HQClient(transport=transport, base_url="http://hq") as client:
            client.app = app
            yield client


@pytest.fixture
async def hq(settings: Settings) -> AsyncIterator[HQClient]:
    """HQ in process, on the real node, under this test's prefix."""
    async for client in _serve(create_app(settings)):
        yield client


@pytest.fixture
def make_hq(settings: Settings) -> Any:
    """Build another HQ with some settings changed: `async with make_hq(es_url=...) as client`."""
    import contextlib

    @contextlib.asynccontextmanager
    async def build(**changes: Any) -> AsyncIterator[HQClient]:
        async for client in _serve(create_app(replace(settings, **changes))):
            yield client

    return build


@pytest.fixture
def stored(es: httpx.Client, prefix: str) -> Any:
    """`stored(query=None)`: the events under this test's prefix matching `query`, as stored."""

    def find(query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        es.post(f"/{prefix}-*/_refresh", params={"allow_no_indices": "true"})
        body: dict[str, Any] = {"size": 1000, "sort": [{"timestamp": "asc"}, {"id": "asc"}]}
        if query is not None:
            body["query"] = query
        params = {"allow_no_indices": "true"}
        response = es.post(f"/{prefix}-*/_search", json=body, params=params)
        for _ in range(50):
            # 503: a monthly index made a moment ago has no started shard to search yet.
            if response.status_code != 503:
                break
            time.sleep(0.1)
            response = es.post(f"/{prefix}-*/_search", json=body, params=params)
        response.raise_for_status()
        hits = response.json()["hits"]["hits"]
        return [hit["_source"] | {"_index": hit["_index"]} for hit in hits]

    return find
