"""Orders through HQ: controllers read their orders (in the original format, with
`Last-Modified`, `ETag` and 304s), operators list them with their problems; one space never sees
another's; order files are reloaded when they change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from .controlapi import EVERY_TEN_SECONDS, MTIME, ORDER, eventually, token, write_order

pytestmark = pytest.mark.anyio


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
