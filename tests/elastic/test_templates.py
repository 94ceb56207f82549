"""Index templates install idempotently on the real node and report what they did."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from logspace.elastic import templates
from logspace.elastic.client import connect
from logspace.elastic.store import Store
from logspace.settings import Settings

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
    client = connect(settings)
    try:
        await templates.install(client, templates.load(prefix))
        newer: list[Any] = templates.load(prefix)
        newer[0].body["version"] = newer[0].version + 1
        report = await templates.install(client, newer)
    finally:
        await client.close()

    version = templates.load(prefix)[0].version
    assert report[0] == f"component template {prefix}-mappings: updated {version} -> {version + 1}"
    assert report[1:] == [
        f"component template {prefix}-settings: unchanged",
        f"index template {prefix}: unchanged",
    ]
    stored = es.get(f"/_component_template/{prefix}-mappings").json()
    assert stored["component_templates"][0]["component_template"]["version"] == version + 1


def test_every_template_file_has_a_version_and_a_description() -> None:
    for template in templates.load("logspace-events"):
        assert template.version >= 1
        assert template.body["_meta"]["managed_by"] == "logspace"
        assert template.body["_meta"]["description"]


def _version_1_mappings(prefix: str) -> dict[str, Any]:
    """The event mappings as version 1 of the template wrote them: no _meta, and double and
    float fields that refuse what they cannot hold."""
    (mappings,) = [
        t.body["template"]["mappings"]
        for t in templates.load(prefix)
        if t.name.endswith("-mappings")
    ]
    old = {key: value for key, value in mappings.items() if key != "_meta"}
    old["dynamic_templates"] = [
        {name: {**entry, "mapping": {"type": entry["mapping"]["type"]}}}
        for template in mappings["dynamic_templates"]
        for name, entry in template.items()
    ]
    return old


async def test_an_index_of_older_mappings_is_brought_up_to_date(
    settings: Settings, prefix: str, es: httpx.Client
) -> None:
    """The month's index, made before HQ took NaN, takes it after an upgrade, and keeps the
    fields it has: no need to wait for next month's index."""
    index = f"{prefix}-development-2026.06"
    created = es.put(f"/{index}", json={"mappings": _version_1_mappings(prefix)})
    assert created.status_code == 200, created.text
    old_document = {"double-properties": {"load": 0.5}, "float-properties": {"ratio": 0.25}}
    assert es.post(f"/{index}/_doc", json=old_document).status_code == 201
    nan = {"double-properties": {"load": "NaN"}, "float-properties": {"ratio": "Infinity"}}
    assert es.post(f"/{index}/_doc", json=nan).status_code == 400  # as version 1 was

    store, restarted = Store(settings), Store(settings)
    try:
        report = await store.install_templates()
        again = await restarted.install_templates()
    finally:
        await store.close()
        await restarted.close()

    version = templates.mappings_version(templates.load(prefix))
    assert f"index {index}: mappings updated 1 -> {version}" in report
    assert not [line for line in again if line.startswith(f"index {index}")]
    mapping = es.get(f"/{index}/_mapping").json()[index]["mappings"]
    assert mapping["_meta"] == {"version": version}
    assert mapping["properties"]["double-properties"]["properties"]["load"] == {
        "type": "double",
        "ignore_malformed": True,
    }
    stored = es.post(f"/{index}/_doc", params={"refresh": "true"}, json=nan)
    assert stored.status_code == 201, stored.text
    query = {"query": {"ids": {"values": [stored.json()["_id"]]}}}
    (hit,) = es.post(f"/{index}/_search", json=query).json()["hits"]["hits"]
    assert sorted(hit["_ignored"]) == ["double-properties.load", "float-properties.ratio"]


@pytest.mark.parametrize(
    ("replicas", "index_settings"),
    [
        ("auto", {"auto_expand_replicas": "0-1"}),
        ("2", {"auto_expand_replicas": "false", "number_of_replicas": 2}),
        ("1-all", {"auto_expand_replicas": "1-all"}),
    ],
)
def test_the_replicas_setting_goes_into_the_settings_template(
    replicas: str, index_settings: dict[str, Any]
) -> None:
    (settings_template,) = [
        t for t in templates.load("p", replicas=replicas) if "settings" in t.body["template"]
    ]

    index = settings_template.body["template"]["settings"]["index"]
    assert {key: index[key] for key in index_settings} == index_settings
    assert settings_template.replicas == replicas
    others = [t for t in templates.load("p", replicas=replicas) if t.name != settings_template.name]
    assert [t.replicas for t in others] == [None, None]


async def test_a_changed_replicas_setting_is_installed_and_applied_to_existing_indices(
    settings: Settings, prefix: str, es: httpx.Client
) -> None:
    """From `auto` to 1 and back: the template is reconfigured, the index that exists gets the
    replicas too (on this single node the replica stays unassigned: yellow), and back to
    `auto` it has none again."""
    index = f"{prefix}-development-2026.06"
    first = Store(settings)
    try:
        await first.install_templates()
    finally:
        await first.close()
    assert es.put(f"/{index}").status_code == 200

    def replicas_of_index() -> tuple[str, str]:
        found = es.get(f"/{index}/_settings", params={"flat_settings": "true"}).json()
        flat = found[index]["settings"]
        return flat["index.number_of_replicas"], flat.get("index.auto_expand_replicas", "")

    created = replicas_of_index()
    one, back = Store(replace(settings, index_replicas="1")), Store(settings)
    try:
        to_one = await one.install_templates()
        with_one = replicas_of_index()
        to_auto = await back.install_templates()
    finally:
        await one.close()
        await back.close()
    with_auto = replicas_of_index()

    assert created == ("0", "0-1")
    assert f"component template {prefix}-settings: reconfigured (replicas auto -> 1)" in to_one
    assert "event indices: replicas set to 1" in to_one
    assert with_one == ("1", "false")
    assert f"component template {prefix}-settings: reconfigured (replicas 1 -> auto)" in to_auto
    assert with_auto == ("0", "0-1")
    installed = es.get(f"/_component_template/{prefix}-settings").json()
    template = installed["component_templates"][0]["component_template"]
    assert template["_meta"]["replicas"] == "auto"
    assert template["template"]["settings"]["index"]["auto_expand_replicas"] == "0-1"
