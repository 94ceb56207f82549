"""Helpers for the read API's integration tests: seed events, then read them through HQ."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


def token(name: str = "development") -> dict[str, str]:
    return {"logspace.space-token": name}


async def seed(
    hq: Any,
    es: httpx.Client,
    prefix: str,
    events: list[dict[str, Any]],
    space_token: str = "development",
) -> None:
    """Store `events` through HQ and make them searchable now."""
    for first in range(0, len(events), 1000):
        response = await hq.put_events(events[first : first + 1000], token=space_token)
        assert response.status_code == 202, response.text
    es.post(f"/{prefix}-*/_refresh", params={"allow_no_indices": "true"}).raise_for_status()


async def search(hq: Any, space_token: str = "development", **params: Any) -> dict[str, Any]:
    """`POST /events` with `params` as the body; asserts a 200."""
    response = await hq.post("/events", content=orjson.dumps(params), headers=token(space_token))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def fresh(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy: HQ normalises what it is given in place."""
    copied: list[dict[str, Any]] = orjson.loads(orjson.dumps(events))
    return copied


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]
