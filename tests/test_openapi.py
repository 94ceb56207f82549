"""The OpenAPI document against HQ itself: every documented operation is called on the real
node, and each answer (status, media type, body) is what the document's own schemas say;
request bodies HQ takes validate, and bodies it refuses for an unknown key do not."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openapi_schema_validator import OAS31Validator

from logspace import openapi
from logspace.testing import make_event

from .reading import seed, token

pytestmark = pytest.mark.anyio

DOCUMENT = openapi.document()
OPERATIONS = {
    (path, method)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method != "$ref"
}
ORDER = {
    "agent-orders": [
        {"id": "os/cpu", "trigger-type": "Scheduler", "trigger-parameter": "0/10 * * * * ? *"}
    ],
    "commit-max-seconds": 10,
}
CAPABILITIES = {
    "id": "monitor",
    "system": "host1",
    "agent-capabilities": [
        {
            "id": "os/cpu",
            "type": "os/cpu",
            "trigger-types": ["Off", "Scheduler"],
            "property-descriptions": [
                {"name": "system_cpu_load", "type": "DOUBLE", "units": {"percent": 100.0}}
            ],
        }
    ],
}
WINDOW = {"start": "2015-05-18T00:00:00Z", "end": "2015-05-19T00:00:00Z"}
LOAD = "double-properties.load"


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Why `value` does not fit `schema` (whose `$ref`s point into the document); none if it
    does."""
    validator = OAS31Validator({**schema, "components": DOCUMENT["components"]})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


def resolved(item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        _, *parts = item["$ref"].split("/")
        found: Any = DOCUMENT
        for part in parts:
            found = found[part]
        item = found
    return item


@dataclass
class Call:
    """One request to a documented operation (`path` as the document writes it)."""

    path: str
    method: str
    url: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: token())
    # False: the body has a key HQ refuses, so the request schema must refuse it too.
    body_fits: bool = True


CALLS = [
    Call("/events", "put", "/events", json=[make_event(timestamp="2015-05-18T10:00:00Z")]),
    Call("/events", "put", "/events", json=[{"id": "only-an-id"}], body_fits=False),
    Call("/events", "put", "/events", json=[], headers={}),
    Call("/events", "get", "/events", params={"size": "2", "type": "os/cpu"}),
    Call("/events", "get", "/api/events", params={"size": "many"}),
    Call(
        "/events",
        "post",
        "/events",
        json={**WINDOW, "size": 1, "where": {"field": LOAD, "range": {"gte": 0}}},
    ),
    Call("/events", "post", "/events", json={"sizes": 1}, body_fits=False),
    Call("/events/export", "get", "/events/export", params={"format": "csv"}),
    Call("/events/export", "get", "/events/export", params={"format": "ndjson"}),
    Call("/events/export", "post", "/events/export", json={"format": "json", "type": ["os/cpu"]}),
    Call("/events/export", "post", "/events/export", json={"formats": "csv"}, body_fits=False),
    Call(
        "/time-series",
        "post",
        "/time-series",
        json={**WINDOW, "gap": 3600, "definitions": [{"property": LOAD, "aggregate": "avg"}, {}]},
    ),
    Call(
        "/time-series",
        "post",
        "/time-series",
        json={**WINDOW, "gap": 3600, "definition": []},
        body_fits=False,
    ),
    Call("/suggestions", "get", "/suggestions", params={"text": "lo"}),
    Call("/suggestions", "post", "/suggestions", json={"text": "host", "size": 5}),
    Call("/suggestions", "post", "/suggestions", json={"txt": "host"}, body_fits=False),
    Call(
        "/agent-activity",
        "get",
        "/agent-activity",
        params={"end": "2015-05-18T12:00:00Z", "duration": "86400"},
    ),
    Call("/openapi.json", "get", "/openapi.json", headers={}),
    Call("/capabilities/{controller_id}", "put", "/capabilities/monitor", json=CAPABILITIES),
    Call(
        "/capabilities/{controller_id}",
        "put",
        "/capabilities/monitor",
        json={**CAPABILITIES, "colour": "red"},
        body_fits=False,
    ),
    Call("/capabilities", "get", "/capabilities"),
    Call("/orders", "get", "/orders"),
    Call("/orders/{controller_id}", "get", "/orders/monitor"),
    Call("/orders/{controller_id}", "get", "/orders/nobody"),
]


def test_every_documented_operation_is_called() -> None:
    assert {(call.path, call.method) for call in CALLS} == OPERATIONS


@pytest.fixture
def orders_dir(tmp_path: Path) -> Path:
    path = tmp_path / "development" / "monitor.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(orjson.dumps(ORDER))
    os.utime(path, (1447765555, 1447765555))
    return tmp_path


async def test_every_answer_fits_the_documents_schemas(
    make_hq: Any, es: httpx.Client, prefix: str, orders_dir: Path
) -> None:
    events = [
        make_event(
            type="os/cpu",
            system="host1",
            agent_id="os/cpu",
            timestamp=f"2015-05-18T{hour:02d}:00:00Z",
            double_properties={"load": hour / 10},
            long_properties={"bytes": hour},
            string_properties={"tags": ["a", "b"]},
            boolean_properties={"up": True},
            date_properties={"booted": "2015-05-01T00:00:00Z"},
        )
        for hour in range(1, 6)
    ]
    problems: list[str] = []
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        await seed(hq, es, prefix, events)
        for call in CALLS:
            operation = DOCUMENT["paths"][call.path][call.method]
            where = f"{call.method.upper()} {call.url} {call.params or call.json}"
            if call.json is not None and "requestBody" in operation:
                (body_schema,) = [c["schema"] for c in operation["requestBody"]["content"].values()]
                fits = not schema_errors(body_schema, call.json)
                if fits != call.body_fits:
                    problems.append(
                        f"{where}: the request schema {'takes' if fits else 'refuses'} it"
                    )
            response = await hq.request(
                call.method.upper(),
                call.url,
                json=call.json,
                params=call.params,
                headers=call.headers,
            )
            if not call.body_fits and response.status_code != 400:
                problems.append(f"{where}: HQ answered {response.status_code}, not 400")
            problems.extend(f"{where}: {p}" for p in answer_problems(operation, response))

    assert problems == []


def answer_problems(operation: dict[str, Any], response: httpx.Response) -> list[str]:
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return [f"status {response.status_code} is not documented ({response.text[:200]})"]
    content = resolved(documented).get("content")
    if content is None:
        return [] if not response.content else ["a body where the document has none"]
    media_type = response.headers["content-type"].split(";")[0].strip()
    if media_type not in content:
        return [f"media type {media_type} is not documented"]
    value = response.json() if media_type == "application/json" else response.text
    return schema_errors(content[media_type]["schema"], value)
