"""Capabilities through HQ, against the real node: controllers upload what their agents can
do, operators list it; one space never sees another's; the control index looks after itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from elasticsearch import AsyncElasticsearch

from logspace.control import capabilities as rules
from logspace.elastic.controlstore import ControlStore, index_body
from logspace.elastic.store import Store
from logspace.settings import Settings

from .controlapi import capabilities, token

pytestmark = pytest.mark.anyio


async def test_a_write_only_token_uploads_capabilities_and_a_reader_lists_them(hq: Any) -> None:
    uploaded = await hq.put(
        "/capabilities/monitor", json=capabilities(), headers=token("second-of-b")
    )

    assert uploaded.status_code == 200
    entry = uploaded.json()
    assert entry["id"] == "monitor"
    assert entry["space"] == "b"
    assert entry["agent-capabilities"][1]["trigger-types"] == ["Off", "Application"]
    listed = await hq.get("/api/capabilities", headers=token("reader-of-b"))
    assert listed.status_code == 200
    assert listed.json() == {"capabilities": [entry]}
    assert entry["updated"].endswith("Z")


async def test_capabilities_are_kept_per_controller_and_system_and_replaced_on_upload(
    hq: Any,
) -> None:
    for system in ("host1", "host2"):
        await hq.put(
            "/capabilities/monitor", json=capabilities(system=system), headers=token("development")
        )
    fewer = capabilities(system="host2")
    fewer["agent-capabilities"] = fewer["agent-capabilities"][:1]
    await hq.put("/api/capabilities/monitor", json=fewer, headers=token("development"))
    await hq.put("/capabilities/web", json=capabilities("web"), headers=token("development"))

    listed = (await hq.get("/capabilities", headers=token("development"))).json()["capabilities"]
    assert [(e["id"], e["system"], len(e["agent-capabilities"])) for e in listed] == [
        ("monitor", "host1", 2),
        ("monitor", "host2", 1),
        ("web", "host1", 2),
    ]
    only = await hq.get("/capabilities?controller-id=web", headers=token("development"))
    assert [e["id"] for e in only.json()["capabilities"]] == ["web"]


async def test_capabilities_of_one_space_are_invisible_to_another(
    hq: Any, es: httpx.Client, prefix: str
) -> None:
    await hq.put(
        "/capabilities/monitor", json=capabilities(space="b"), headers=token("development")
    )
    await hq.put(
        "/capabilities/monitor", json=capabilities(system="hostb"), headers=token("token-of-b")
    )

    mine = (await hq.get("/capabilities", headers=token("development"))).json()["capabilities"]
    theirs = (await hq.get("/capabilities", headers=token("token-of-b"))).json()["capabilities"]
    assert [(e["space"], e["system"]) for e in mine] == [("development", "host1")]
    assert [(e["space"], e["system"]) for e in theirs] == [("b", "hostb")]
    stored = es.post(f"/{prefix}.control/_search", json={"sort": ["system"]}).json()["hits"]["hits"]
    assert [(h["_source"]["space"], h["_source"]["agent-ids"]) for h in stored] == [
        ("development", ["os/cpu", "http/asgi"]),
        ("b", ["os/cpu", "http/asgi"]),
    ]


async def test_a_path_id_that_differs_from_the_body_id_gets_400_invalid_controller_id(
    hq: Any,
) -> None:
    response = await hq.put(
        "/capabilities/monitor", json=capabilities("web"), headers=token("development")
    )

    assert response.status_code == 400
    assert response.json() == {
        "type": "INVALID_CONTROLLER_ID",
        "message": "The ID in the path does not match the ID in the payload.",
        "parameters": {"controller-id": "monitor", "payload-id": "web"},
    }


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"id": None}, "$.id", "expected the controller id 'monitor'"),
        (
            {"agent-capabilities": {}},
            "$.agent-capabilities",
            "expected a list (possibly empty), found an object",
        ),
        (
            {"agent-capabilities": [{"id": "a", "trigger-types": ["Sometimes"]}]},
            "$.agent-capabilities[0].trigger-types[0]",
            'expected one of Application, Scheduler, Off, found "Sometimes"',
        ),
        (
            {"agent-capabilities": [
                {"id": "a", "trigger-types": [],
                 "property-descriptions": [{"name": "x", "type": "T"}]},
            ]},
            "$.agent-capabilities[0].property-descriptions[0].type",
            'expected one of BOOLEAN, DATE, DOUBLE, FLOAT, INTEGER, LONG, STRING, found "T"',
        ),
        (
            {"agent-capabilities": [{"id": "a", "trigger-types": []}] * 2},
            "$.agent-capabilities[1].id",
            "agent 'a' is listed twice",
        ),
        ({"agents": []}, "$.agents", "unknown field; known: id, system, space, agent-capabilities"),
        ({"system": 7}, "$.system", "expected a text of 1 to 255 characters"),
    ],
)  # fmt: skip
async def test_invalid_capabilities_get_400_naming_the_place(
    hq: Any, change: dict[str, Any], path: str, message: str
) -> None:
    body = capabilities(**change)

    response = await hq.put("/capabilities/monitor", json=body, headers=token("development"))

    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "INVALID_CAPABILITIES"
    assert error["parameters"]["errors"][0] == {"path": path, "message": message}
    assert error["message"].startswith(f"Invalid capabilities: {message} at {path}")


async def test_capabilities_that_are_not_json_get_400_invalid_json_and_bad_ids_400(hq: Any) -> None:
    not_json = await hq.put("/capabilities/monitor", content=b"{", headers=token("development"))
    bad_id = await hq.put(
        "/capabilities/bad%20id", json=capabilities("bad id"), headers=token("development")
    )

    assert not_json.status_code == 400
    assert not_json.json()["type"] == "INVALID_JSON"
    assert bad_id.status_code == 400
    assert bad_id.json()["type"] == "INVALID_CONTROLLER_ID"
    assert bad_id.json()["parameters"] == {"controller-id": "bad id"}


async def test_capabilities_need_the_right_access(hq: Any) -> None:
    reader_uploads = await hq.put(
        "/capabilities/monitor", json=capabilities(), headers=token("reader-of-b")
    )
    writer_lists = await hq.get("/capabilities", headers=token("second-of-b"))
    nobody = await hq.put("/capabilities/monitor", json=capabilities())

    assert (reader_uploads.status_code, reader_uploads.json()["type"]) == (403, "ACCESS_DENIED")
    assert (writer_lists.status_code, writer_lists.json()["type"]) == (403, "ACCESS_DENIED")
    assert (nobody.status_code, nobody.json()["type"]) == (403, "MISSING_SPACE_TOKEN")


async def test_the_control_index_is_created_once_with_its_mapping_and_upgraded_when_older(
    settings: Settings, es: httpx.Client, prefix: str
) -> None:
    store = Store(settings)
    control = store.control()
    try:
        assert await control.ensure_index() == "created"
        assert await control.ensure_index() == "unchanged"
        version, body = index_body()
        mapping = es.get(f"/{prefix}.control/_mapping").json()[f"{prefix}.control"]["mappings"]
        assert mapping == body["mappings"]
        assert mapping["dynamic"] == "strict"
        es.delete(f"/{prefix}.control")
        older = {**body["mappings"], "_meta": {"version": 0}}
        del older["properties"]["agent-ids"]
        es.put(f"/{prefix}.control", json={"mappings": older}).raise_for_status()
        assert await control.ensure_index() == f"updated 0 -> {version}"
        mapping = es.get(f"/{prefix}.control/_mapping").json()[f"{prefix}.control"]["mappings"]
        assert mapping["properties"]["agent-ids"] == {"type": "keyword"}
    finally:
        await store.close()


async def test_the_control_index_comes_back_when_elasticsearch_lost_it(
    es_url: str, es: httpx.Client, prefix: str
) -> None:
    """Lost between checks, the index would be auto-created without its mapping: the store
    checks it again every `check_seconds` (a minute in HQ), and after Elasticsearch was
    unreachable."""
    client = AsyncElasticsearch(es_url)
    control = ControlStore(client, f"{prefix}.control", 1, check_seconds=0.0)
    document_id, source = capabilities_document()
    try:
        await control.put(document_id, source)
        es.delete(f"/{prefix}.control")

        await control.put(document_id, source)

        assert await control.search("development", {"query": {"match_all": {}}}) == [source]
    finally:
        await client.close()
    mapping = es.get(f"/{prefix}.control/_mapping").json()[f"{prefix}.control"]["mappings"]
    assert mapping["dynamic"] == "strict"


def capabilities_document() -> tuple[str, dict[str, Any]]:
    parsed = rules.parse(orjson.dumps(capabilities()), "monitor")
    return rules.document("development", parsed, datetime(2015, 11, 17, tzinfo=UTC))
