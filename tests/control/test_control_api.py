"""Central control through HQ, against the real node: controllers upload capabilities and read
their orders; operators list both; one space never sees another's."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from elasticsearch import AsyncElasticsearch

from logspace.control import capabilities as rules
from logspace.elastic.controlstore import ControlStore, index_body
from logspace.elastic.store import Store
from logspace.settings import Settings

pytestmark = pytest.mark.anyio

EVERY_TEN_SECONDS = "0/10 * * * * ? *"
ORDER = {
    "agent-orders": [
        {"id": "os/cpu", "trigger-type": "Scheduler", "trigger-parameter": EVERY_TEN_SECONDS}
    ],
    "commit-max-seconds": 10,
}
# 2015-11-17 13:05:55 UTC, whole seconds, as order files' times in these tests: long before
# HQ starts, so `Last-Modified` is when HQ started (whole seconds).
MTIME = 1447765555


def token(value: str) -> dict[str, str]:
    return {"logspace.space-token": value}


def capabilities(controller_id: str = "monitor", system: str = "host1", **changes: Any) -> Any:
    body = {
        "id": controller_id,
        "system": system,
        "agent-capabilities": [
            {
                "id": "os/cpu",
                "type": "os/cpu",
                "trigger-types": ["Off", "Scheduler"],
                "property-descriptions": [
                    {"name": "system_cpu_load", "type": "DOUBLE", "units": {"percent": 100.0}}
                ],
            },
            {"id": "http/asgi", "trigger-types": ["off", "APPLICATION"]},
        ],
    }
    body.update(changes)
    return body


def write_order(
    directory: Path, space: str, controller_id: str, order: Any, mtime: int = MTIME
) -> Path:
    path = directory / space / f"{controller_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(order if isinstance(order, bytes) else orjson.dumps(order))
    os.utime(path, (mtime, mtime))
    return path


async def eventually(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Poll `check` (sync or async) until it returns something true; fail after `seconds`."""
    import anyio

    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {check}")
        await anyio.sleep(0.05)


# -- capabilities -----------------------------------------------------------------------


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


# -- orders -----------------------------------------------------------------------------


@pytest.fixture
def orders_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "orders"
    directory.mkdir()
    return directory


async def test_an_order_is_served_in_the_original_format_with_last_modified(
    make_hq: Any, orders_dir: Path
) -> None:
    lower_case = {
        "agent-orders": [
            {"id": "os/cpu", "trigger-type": "scheduler", "trigger-parameter": EVERY_TEN_SECONDS}
        ],
        "commit-max-seconds": 10,
    }
    write_order(orders_dir, "b", "monitor", lower_case)
    before = datetime.now(UTC).replace(microsecond=0)
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        for path in ("/orders/monitor", "/api/orders/monitor"):
            response = await hq.get(path, headers=token("second-of-b"))  # write-only

            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            last_modified = parsedate_to_datetime(response.headers["last-modified"])
            assert before <= last_modified <= datetime.now(UTC)
            assert response.content == orjson.dumps(ORDER)  # `Scheduler` spelt as the original


async def test_if_modified_since_not_older_than_the_order_gets_304(
    make_hq: Any, orders_dir: Path
) -> None:
    write_order(orders_dir, "b", "monitor", ORDER)
    async with make_hq(orders_dir=str(orders_dir)) as hq:

        async def status(since: str) -> int:
            response = await hq.get(
                "/orders/monitor", headers={**token("token-of-b"), "If-Modified-Since": since}
            )
            return response.status_code

        first = await hq.get("/orders/monitor", headers=token("token-of-b"))
        moment = parsedate_to_datetime(first.headers["last-modified"])
        assert await status(first.headers["last-modified"]) == 304
        later = moment + timedelta(seconds=1)
        assert await status(format_datetime(later, usegmt=True)) == 304  # the original said 200
        assert await status(moment.strftime("%A, %d-%b-%y %H:%M:%S GMT")) == 304  # RFC 850
        assert await status(moment.strftime("%a %b %d %H:%M:%S %Y")) == 304  # asctime
        earlier = moment - timedelta(seconds=1)
        assert await status(format_datetime(earlier, usegmt=True)) == 200
        assert await status("yesterday") == 200  # unparsable: ignored
        assert await status("") == 200  # the original agents' first poll


async def test_a_matching_etag_gets_304_with_the_same_headers_and_no_body(
    make_hq: Any, orders_dir: Path
) -> None:
    write_order(orders_dir, "b", "monitor", ORDER)
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        first = await hq.get("/orders/monitor", headers=token("token-of-b"))
        again = await hq.get(
            "/orders/monitor",
            headers={**token("token-of-b"), "If-None-Match": first.headers["etag"]},
        )
        other = await hq.get(
            "/orders/monitor",
            headers={
                **token("token-of-b"),
                "If-None-Match": '"other"',
                "If-Modified-Since": first.headers["last-modified"],
            },
        )

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["last-modified"] == first.headers["last-modified"]
    assert other.status_code == 200  # If-None-Match decides when both are sent


async def test_a_missing_order_gets_404_order_not_found(
    make_hq: Any, orders_dir: Path, hq: Any
) -> None:
    async with make_hq(orders_dir=str(orders_dir)) as with_directory:
        response = await with_directory.get("/orders/monitor", headers=token("development"))
    without_directory = await hq.get("/api/orders/monitor", headers=token("development"))

    for answer in (response, without_directory):
        assert answer.status_code == 404
        assert answer.json() == {
            "type": "ORDER_NOT_FOUND",
            "message": "There is no order for controller with ID 'monitor'.",
            "parameters": {"controller-id": "monitor"},
        }


async def test_orders_of_one_space_are_invisible_to_another(make_hq: Any, orders_dir: Path) -> None:
    write_order(orders_dir, "development", "monitor", ORDER)
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        own = await hq.get("/orders/monitor", headers=token("development"))
        other = await hq.get("/orders/monitor", headers=token("token-of-b"))
        listed_own = (await hq.get("/orders", headers=token("development"))).json()
        listed_other = (await hq.get("/orders", headers=token("reader-of-b"))).json()

    assert own.status_code == 200
    assert other.status_code == 404
    last_modified = parsedate_to_datetime(own.headers["last-modified"])
    assert listed_own == {
        "orders": [
            {
                "controller-id": "monitor",
                "file": "development/monitor.json",
                "last-modified": last_modified.isoformat().replace("+00:00", "Z"),
                "order": ORDER,
            }
        ],
        "invalid": [],
    }
    assert listed_other == {"orders": [], "invalid": []}


async def test_orders_need_a_valid_token_and_listing_needs_read_access(
    make_hq: Any, orders_dir: Path
) -> None:
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        none = await hq.get("/orders/monitor")
        wrong = await hq.get("/orders/monitor", headers=token("nope"))
        writer_lists = await hq.get("/orders", headers=token("second-of-b"))

    assert (none.status_code, none.json()["type"]) == (403, "MISSING_SPACE_TOKEN")
    assert (wrong.status_code, wrong.json()["type"]) == (403, "INVALID_SPACE_TOKEN")
    assert (writer_lists.status_code, writer_lists.json()["type"]) == (403, "ACCESS_DENIED")


async def test_order_files_are_reloaded_when_they_appear_change_and_go(
    make_hq: Any, orders_dir: Path
) -> None:
    async with make_hq(orders_dir=str(orders_dir), orders_reload_seconds=0.05) as hq:

        async def served() -> Any:
            response = await hq.get("/orders/monitor", headers=token("development"))
            return response.json() if response.status_code == 200 else response.status_code

        assert await served() == 404
        write_order(orders_dir, "development", "monitor", ORDER)
        await eventually(lambda: served_is(served, ORDER))
        off = {"agent-orders": [{"id": "os/cpu", "trigger-type": "Off"}], "commit-max-seconds": 0}
        write_order(orders_dir, "development", "monitor", off, mtime=MTIME + 60)
        await eventually(lambda: served_is(served, off))
        (orders_dir / "development" / "monitor.json").unlink()
        await eventually(lambda: served_is(served, 404))


async def served_is(served: Callable[[], Any], expected: Any) -> bool:
    return bool(await served() == expected)


async def test_an_invalid_order_file_is_listed_with_its_problems_and_the_last_valid_one_stays(
    make_hq: Any, orders_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_order(orders_dir, "development", "monitor", ORDER)
    write_order(orders_dir, "development", "web", b"{not json")
    async with make_hq(orders_dir=str(orders_dir), orders_reload_seconds=0.05) as hq:
        broken = {
            "agent-orders": [
                {"id": "os/cpu", "trigger-type": "Sometimes"},
                {"id": "os/disk", "trigger-type": "Scheduler", "trigger-parameter": "0/10 * * * *"},
            ],
            "commit-max-seconds": -1,
        }
        write_order(orders_dir, "development", "monitor", broken, mtime=MTIME + 60)

        async def listed() -> Any:
            return (await hq.get("/orders", headers=token("development"))).json()

        listing = await eventually(lambda: invalid_count(listed, 2))
        still = await hq.get("/orders/monitor", headers=token("development"))
        web = await hq.get("/orders/web", headers=token("development"))
        health = await hq.get("/health/live")

    assert still.status_code == 200
    assert still.json() == ORDER
    assert web.status_code == 404
    assert health.status_code == 200
    monitor, web_entry = listing["invalid"]
    assert monitor["file"] == "development/monitor.json"
    assert monitor["errors"] == [
        {"path": "$.agent-orders[0].trigger-type",
         "message": 'expected one of Application, Scheduler, Off, found "Sometimes"'},
        {"path": "$.agent-orders[1].trigger-parameter",
         "message": "not a cron expression: expected 6 or 7 fields (second minute hour "
                    "day-of-month month day-of-week [year]), found 5"},
        {"path": "$.commit-max-seconds",
         "message": "expected a whole number of seconds from 0 to 86400, found -1"},
    ]  # fmt: skip
    assert monitor["previous-in-force"]["order"] == ORDER
    assert web_entry["controller-id"] == "web"
    assert web_entry["errors"][0]["message"].startswith("not valid JSON")
    assert web_entry["previous-in-force"] is None
    assert [e["controller-id"] for e in listing["orders"]] == ["monitor"]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("development/web.json: not valid JSON" in line for line in logged)
    assert any("development/monitor.json" in line and "stays in force" in line for line in logged)


async def invalid_count(listed: Callable[[], Any], count: int) -> Any:
    listing = await listed()
    return listing if len(listing["invalid"]) == count else None


async def test_files_outside_the_layout_are_reported_and_others_ignored(
    make_hq: Any, orders_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_order(orders_dir, "development", "bad id", ORDER)
    write_order(orders_dir, "Not-A-Space", "monitor", ORDER)
    (orders_dir / "monitor.json").write_bytes(orjson.dumps(ORDER))
    (orders_dir / "development" / "README.md").write_text("orders of the development space")
    (orders_dir / "development" / ".monitor.json.swp").write_text("editor state")

    async with make_hq(orders_dir=str(orders_dir)) as hq:
        listing = (await hq.get("/orders", headers=token("development"))).json()

    assert listing["orders"] == []
    assert [(e["file"], e["errors"][0]["message"]) for e in listing["invalid"]] == [
        ("development/bad id.json",
         "'bad id' is not a controller id (1 to 128 letters, digits, '_', '-' and '.', "
         "starting with a letter or digit)"),
    ]  # fmt: skip
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "Not-A-Space/monitor.json: 'Not-A-Space' is not a space name" in logged
    assert "monitor.json: order files belong in a space's directory" in logged
    assert "README" not in logged
    assert "swp" not in logged


async def test_unknown_query_parameters_of_the_listings_get_400(
    make_hq: Any, orders_dir: Path
) -> None:
    async with make_hq(orders_dir=str(orders_dir)) as hq:
        orders = await hq.get("/orders?space=b", headers=token("development"))
        caps = await hq.get("/capabilities?system=x", headers=token("development"))

    assert orders.status_code == caps.status_code == 400
    assert orders.json()["parameters"]["parameter"] == "space"
    assert caps.json()["parameters"] == {
        "parameter": "system",
        "reason": "unknown parameter; known: controller-id",
    }
