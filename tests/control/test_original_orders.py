"""Orders as the original Java agents read them: every order HQ serves gets through their
strict parser, and `Last-Modified` alone (they never send `If-None-Match`) tells them when an
order changed."""

from __future__ import annotations

import logging
import os
import shutil
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from logspace.control.orderbook import OrderBook

from ..original import OriginalParserError, read_order
from .controlapi import eventually, token, write_order

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "data" / "original-orders"
CPU = {"id": "os/cpu", "trigger-type": "Scheduler", "trigger-parameter": "0/10 * * * * ? *"}

# The original's own order files (its demo, its integration test and its sample HQ), and what
# its agents read from HQ's answer to each.
READ_BACK = {
    "logspace-demo": {
        "agent-orders": [
            {**CPU, "id": f"os/{agent}"} for agent in ("cpu", "disk", "memory", "swap")
        ],
        "commit-max-seconds": 10,
    },
    "1": {
        "agent-orders": [
            {
                "id": "TEST-AGENT-001",
                "trigger-type": "Scheduler",
                "trigger-parameter": "0/1 * * * * ? *",
            }
        ],
        "commit-max-seconds": 60,
    },
    "webui": {
        "agent-orders": [
            {"id": "Dispatcher", "trigger-type": "Application", "trigger-parameter": None}
        ],
        "commit-max-seconds": 10,
    },
    "deep-importer": {
        "agent-orders": [
            {"id": "deep-importer/Dry-Run", "trigger-type": "Application", "trigger-parameter": ""}
        ],
        "commit-max-seconds": 60,
    },
    "test-off": {
        "agent-orders": [
            {"id": "TEST-AGENT-001", "trigger-type": "Off", "trigger-parameter": "0/2 * * * * ? *"}
        ],
        "commit-max-seconds": 60,
    },
    "logspace-sample": {"agent-orders": [], "commit-max-seconds": 1},
    # Without commit-max-seconds the original parser throws: HQ serves its default.
    "no-commit": {"agent-orders": [CPU], "commit-max-seconds": 300},
}


def test_the_strict_reader_refuses_what_the_original_parser_refused() -> None:
    """The reader below is as strict as the original: without it the tests would prove little."""
    for body in (
        b"{}",
        b'{"agent-orders": []}',
        b'{"commit-max-seconds": 1, "agent-orders": []}',
        b'{"agent-orders": [{"trigger-type": "Off", "id": "a"}], "commit-max-seconds": 1}',
        b'{"agent-orders": [], "commit-max-count": 5, "commit-max-seconds": 1}',
    ):
        with pytest.raises(OriginalParserError):
            read_order(body)


@pytest.mark.parametrize("name", READ_BACK)
async def test_the_originals_order_files_are_served_so_its_agents_read_them(
    make_hq: Any, tmp_path: Path, name: str
) -> None:
    directory = tmp_path / "orders" / "development"
    directory.mkdir(parents=True)
    shutil.copy(EXAMPLES / f"{name}.json", directory)
    async with make_hq(orders_dir=str(tmp_path / "orders")) as hq:
        response = await hq.get(f"/api/orders/{name}", headers=token("development"))

    assert response.status_code == 200, response.text
    assert read_order(response.content) == READ_BACK[name]


async def test_an_order_without_commit_max_seconds_is_served_with_the_default_and_listed_so(
    make_hq: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logspace.control.orderbook")
    write_order(tmp_path, "development", "monitor", {"agent-orders": []})
    write_order(tmp_path, "development", "legacy", {"agent-orders": [], "commit-max-count": 9})
    async with make_hq(orders_dir=str(tmp_path), orders_default_commit_seconds=30) as hq:
        served = await hq.get("/orders/monitor", headers=token("development"))
        legacy = await hq.get("/orders/legacy", headers=token("development"))
        listing = (await hq.get("/orders", headers=token("development"))).json()

    assert served.json() == {"agent-orders": [], "commit-max-seconds": 30}
    assert legacy.json() == {"agent-orders": [], "commit-max-seconds": 30}
    entries = {entry["controller-id"]: entry for entry in listing["orders"]}
    assert entries["monitor"]["filled-in"] == ["commit-max-seconds"]
    assert "ignored" not in entries["monitor"]
    assert entries["legacy"]["ignored"] == ["commit-max-count"]
    assert entries["monitor"]["order"] == served.json()
    assert "order file development/monitor.json served as commit-max-seconds 30" in caplog.text


async def test_a_changed_order_with_an_older_mtime_gets_a_newer_last_modified(
    make_hq: Any, tmp_path: Path
) -> None:
    """As the original agents poll: an empty If-Modified-Since first, then the last answer's
    Last-Modified. A file replaced by an older copy (`cp -p`, a backup, `git checkout`) is
    still news to them."""
    now = int(time.time())
    path = write_order(tmp_path, "development", "monitor", {"agent-orders": [CPU]}, mtime=now)
    async with make_hq(orders_dir=str(tmp_path), orders_reload_seconds=0.05) as hq:

        async def poll(since: str) -> Any:
            return await hq.get(
                "/api/orders/monitor",
                headers={**token("development"), "If-Modified-Since": since},
            )

        first = await poll("")
        assert first.status_code == 200
        assert (await poll(first.headers["last-modified"])).status_code == 304

        off = {"agent-orders": [{"id": "os/cpu", "trigger-type": "Off"}], "commit-max-seconds": 5}
        path.write_bytes(orjson.dumps(off))
        os.utime(path, (now - 86_400, now - 86_400))  # an older copy

        async def changed() -> Any:
            response = await poll(first.headers["last-modified"])
            return response if response.status_code == 200 else None

        second = await eventually(changed)
        again = await poll(second.headers["last-modified"])

    assert read_order(second.content) == {
        "agent-orders": [{"id": "os/cpu", "trigger-type": "Off", "trigger-parameter": None}],
        "commit-max-seconds": 5,
    }
    assert parsedate_to_datetime(second.headers["last-modified"]) > parsedate_to_datetime(
        first.headers["last-modified"]
    )
    assert again.status_code == 304


def test_the_same_content_keeps_its_last_modified_and_new_content_always_moves_it(
    tmp_path: Path,
) -> None:
    """Within one second, too: the original's equality to the second could not tell those."""
    now = int(time.time())
    path = write_order(tmp_path, "development", "monitor", {"agent-orders": [CPU]}, mtime=now)
    book = OrderBook(str(tmp_path))
    first = book.order("development", "monitor")
    assert first is not None

    os.utime(path, (now + 5, now + 5))  # touched, same content
    book.reload()
    touched = book.order("development", "monitor")
    path.write_bytes(orjson.dumps({"agent-orders": [], "commit-max-seconds": 1}))
    os.utime(path, (now, now))
    book.reload()
    changed = book.order("development", "monitor")

    assert touched is not None
    assert changed is not None
    assert (touched.last_modified, touched.etag) == (first.last_modified, first.etag)
    assert changed.etag != first.etag
    assert changed.last_modified > first.last_modified
