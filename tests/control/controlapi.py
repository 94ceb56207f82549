"""What the control API's tests share: tokens, a controller's capabilities, order files, and
waiting for what HQ notices by itself."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

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
