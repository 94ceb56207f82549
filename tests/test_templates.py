"""Index templates install idempotently on the real node and report what they did."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from logspace import templates
from logspace.settings import Settings
from logspace.store import Store

pytestmark = pytest.mark.anyio


async def test_installing_twice_changes_nothing_the_second_time(
    settings: Settings, prefix: str, es: httpx.Client
) -> None:
    store = Store(settings)
    try:
        first = await store.install_templates()
        second = await store.install_templates()
    finally:
        await store.close()

    assert first == [
        f"component template {prefix}-mappings: installed",
        f"component template {prefix}-settings: installed",
        f"index template {prefix}: installed",
    ]
    assert second == [line.replace("installed", "unchanged") for line in first]
    installed = es.get(f"/_index_template/{prefix}").json()["index_templates"][0]
    assert installed["index_template"]["index_patterns"] == [f"{prefix}-*"]
    assert installed["index_template"]["composed_of"] == [
        f"{prefix}-mappings",
        f"{prefix}-settings",
    ]


async def test_a_new_version_of_a_template_is_reported_as_an_update(
    settings: Settings, prefix: str, es: httpx.Client
) -> None:
    store = Store(settings)
    try:
        await store.install_templates()
        newer: list[Any] = templates.load(prefix)
        newer[0].body["version"] = newer[0].version + 1
        report = await templates.install(store, newer)
    finally:
        await store.close()

    assert report[0] == f"component template {prefix}-mappings: updated 1 -> 2"
    assert report[1:] == [
        f"component template {prefix}-settings: unchanged",
        f"index template {prefix}: unchanged",
    ]
    stored = es.get(f"/_component_template/{prefix}-mappings").json()
    assert stored["component_templates"][0]["component_template"]["version"] == 2


def test_every_template_file_has_a_version_and_a_description() -> None:
    for template in templates.load("logspace-events"):
        assert template.version >= 1
        assert template.body["_meta"]["managed_by"] == "logspace"
        assert template.body["_meta"]["description"]
