"""Kibana's HTTP API, as HQ uses it: each call built by a pure function, one class sending them.

The calls follow Kibana 9's documented public APIs (the sources are listed with the recorded
contract, tests/data/kibana-contract.json, which the tests hold every call to):

- spaces: `GET /api/spaces/space/{id}`, `POST /api/spaces/space`, `PUT /api/spaces/space/{id}`;
- saved objects: `POST /api/saved_objects/_import` and, into a space,
  `POST /s/{space_id}/api/saved_objects/_import`, with `overwrite=true`;
- roles: `GET /api/security/role/{name}`, `PUT /api/security/role/{name}`.

Every call carries `kbn-xsrf`, which Kibana requires of every request that changes something.
They were never sent to a real Kibana: none runs where Logspace is developed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from logspace.elastic import tls
from logspace.settings import Settings

__all__ = [
    "Call",
    "Kibana",
    "KibanaError",
    "create_space",
    "get_role",
    "get_space",
    "import_objects",
    "ndjson",
    "put_role",
    "update_space",
]

XSRF_HEADER = "kbn-xsrf"
_RETRY_SECONDS = 2.0


class KibanaError(Exception):
    """Kibana could not be reached, or refused a call; the message says which and why."""


@dataclass(frozen=True)
class Call:
    """One request to Kibana, and the statuses that are answers rather than failures."""

    what: str  # for messages, e.g. "create space logspace-events-alpha"
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    ndjson: bytes | None = None  # a file of saved objects, sent as multipart/form-data
    expected: tuple[int, ...] = (200,)


def _segment(value: str) -> str:
    return quote(value, safe="")


def get_space(space_id: str) -> Call:
    return Call(
        f"read space {space_id}", "GET", f"/api/spaces/space/{_segment(space_id)}",
        expected=(200, 404),
    )  # fmt: skip


def create_space(space: dict[str, Any]) -> Call:
    return Call(f"create space {space['id']}", "POST", "/api/spaces/space", json=space)


def update_space(space: dict[str, Any]) -> Call:
    """The whole space: Kibana replaces it (its id cannot change)."""
    path = f"/api/spaces/space/{_segment(space['id'])}"
    return Call(f"update space {space['id']}", "PUT", path, json=space)


def import_objects(objects: Sequence[dict[str, Any]], space_id: str | None = None) -> Call:
    """Import saved objects, overwriting those of the same id, into the default space or
    `space_id` (the space's path prefix `/s/<id>`)."""
    base = "" if space_id is None else f"/s/{_segment(space_id)}"
    where = "the default space" if space_id is None else f"space {space_id}"
    return Call(
        f"import the saved objects into {where}",
        "POST",
        f"{base}/api/saved_objects/_import",
        params={"overwrite": "true"},
        ndjson=ndjson(objects),
    )


def ndjson(objects: Sequence[dict[str, Any]]) -> bytes:
    """Saved objects as the file the import takes: one JSON object per line."""
    return b"".join(orjson.dumps(entry) + b"\n" for entry in objects)


def get_role(name: str) -> Call:
    return Call(
        f"read role {name}", "GET", f"/api/security/role/{_segment(name)}", expected=(200, 404)
    )


def put_role(name: str, role: dict[str, Any]) -> Call:
    """Create or replace a role; Kibana answers 204."""
    path = f"/api/security/role/{_segment(name)}"
    return Call(f"write role {name}", "PUT", path, json=role, expected=(204,))


class Kibana:
    """One Kibana at `url`. `send` is the only I/O: while Kibana cannot be reached or answers
    503 (still starting), it tries again until `wait` seconds after this object was made.

    Credentials are Elasticsearch's (`LOGSPACE_ES_*`): Kibana checks its users against
    Elasticsearch. TLS uses the same settings as towards Elasticsearch."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        *,
        wait: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {XSRF_HEADER: "logspace"}
        auth: httpx.Auth | None = None
        if settings.es_api_key:
            headers["authorization"] = f"ApiKey {settings.es_api_key}"
        elif settings.es_username:
            auth = httpx.BasicAuth(settings.es_username, settings.es_password or "")
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            auth=auth,
            verify=tls.httpx_verify(settings, "Kibana"),
            timeout=60.0,
            transport=transport,
        )
        self._wait = wait
        self._deadline: float | None = None

    async def __aenter__(self) -> Kibana:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def send(self, call: Call) -> httpx.Response:
        """Kibana's answer, of one of `call.expected` statuses; else `KibanaError`."""
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self._wait
        while True:
            try:
                response = await self._client.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=(
                        None
                        if call.ndjson is None
                        else {"file": ("logspace.ndjson", call.ndjson, "application/ndjson")}
                    ),
                )
            except httpx.TransportError as error:
                problem = (
                    f"Kibana at {self._client.base_url} could not be reached "
                    f"({type(error).__name__})"
                )
            else:
                if response.status_code != 503:
                    return _checked(call, response)
                problem = f"Kibana at {self._client.base_url} is not ready yet (503)"
            if loop.time() + _RETRY_SECONDS > self._deadline:
                raise KibanaError(problem)
            await asyncio.sleep(_RETRY_SECONDS)


def _checked(call: Call, response: httpx.Response) -> httpx.Response:
    if response.status_code in call.expected:
        return response
    if response.status_code in (401, 403):
        raise KibanaError(
            f"Kibana refused the credentials ({response.status_code}) to {call.what}; set "
            "LOGSPACE_ES_USERNAME and LOGSPACE_ES_PASSWORD to a user who may (for example "
            f"`elastic`: roles need manage_security). Kibana said: {response.text[:300]}"
        )
    raise KibanaError(
        f"Kibana answered {response.status_code} to {call.what}: {response.text[:500]}"
    )
