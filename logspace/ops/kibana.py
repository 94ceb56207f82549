"""Kibana: the saved objects in `kibana/` (shipped as the package data `logspace.saved_objects`)
and their import into a Kibana.

`kibana/saved-objects.ndjson` holds a data view over the event indices, with `timestamp` as
its time field, the Lens visualisations of the overview dashboard and the dashboard itself,
each with a fixed id. Importing overwrites objects of the same id, so running it again
updates them in place. Only the data view's index pattern depends on the configured index
prefix; `load` fills it in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import httpx
import orjson

from logspace.elastic import tls
from logspace.settings import Settings

__all__ = ["SAVED_OBJECTS", "KibanaError", "import_objects", "load", "ndjson"]

SAVED_OBJECTS: Traversable = files("logspace.saved_objects") / "saved-objects.ndjson"
_RETRY_SECONDS = 2.0


class KibanaError(Exception):
    """Kibana could not be reached, or refused the import; the message says which."""


def load(prefix: str, path: Traversable = SAVED_OBJECTS) -> list[dict[str, Any]]:
    """The saved objects, with the data view over `<prefix>-*`."""
    objects = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for entry in objects:
        if entry["type"] == "index-pattern":
            entry["attributes"]["title"] = f"{prefix}-*"
    return objects


def ndjson(objects: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(entry) + b"\n" for entry in objects)


async def import_objects(
    url: str,
    objects: Sequence[dict[str, Any]],
    settings: Settings,
    *,
    wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[str]:
    """Import `objects` into the Kibana at `url`, overwriting; one report line per object.

    While Kibana cannot be reached or answers 503 (it is still starting), try again until
    `wait` seconds have passed. Credentials are Elasticsearch's (`LOGSPACE_ES_*`): Kibana
    authenticates its users against Elasticsearch."""
    headers = {"kbn-xsrf": "logspace"}
    auth: httpx.Auth | None = None
    if settings.es_api_key:
        headers["authorization"] = f"ApiKey {settings.es_api_key}"
    elif settings.es_username:
        auth = httpx.BasicAuth(settings.es_username, settings.es_password or "")
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"),
        headers=headers,
        auth=auth,
        verify=tls.httpx_verify(settings, "Kibana"),
        timeout=60.0,
        transport=transport,
    ) as client:
        response = await _post_until_ready(client, ndjson(objects), wait)
    return _report(response)


async def _post_until_ready(client: httpx.AsyncClient, body: bytes, wait: float) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            response = await client.post(
                "/api/saved_objects/_import",
                params={"overwrite": "true"},
                files={"file": ("logspace.ndjson", body, "application/ndjson")},
            )
        except httpx.TransportError as error:
            problem = f"Kibana at {client.base_url} could not be reached ({type(error).__name__})"
        else:
            if response.status_code != 503:
                return response
            problem = f"Kibana at {client.base_url} is not ready yet (503)"
        if loop.time() + _RETRY_SECONDS > deadline:
            raise KibanaError(problem)
        await asyncio.sleep(_RETRY_SECONDS)


def _report(response: httpx.Response) -> list[str]:
    if response.status_code in (401, 403):
        raise KibanaError(
            f"Kibana refused the credentials ({response.status_code}); set LOGSPACE_ES_USERNAME "
            "and LOGSPACE_ES_PASSWORD to a user who may manage saved objects."
        )
    try:
        result = response.json()
    except ValueError:
        result = None
    if response.status_code != 200 or not isinstance(result, dict):
        raise KibanaError(
            f"Kibana answered {response.status_code} to the import: {response.text[:500]}"
        )
    lines = [
        f"{entry['type']} {entry['id']}: {'overwritten' if entry.get('overwrite') else 'created'}"
        for entry in result.get("successResults", [])
    ]
    errors = result.get("errors") or []
    if not result.get("success") or errors:
        details = "; ".join(
            f"{e.get('type')} {e.get('id')}: {orjson.dumps(e.get('error')).decode()}"
            for e in errors
        )
        raise KibanaError(f"Kibana did not import every object: {details or result}")
    return lines
