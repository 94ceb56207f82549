"""Index templates: the JSON files in `index_templates/` (shipped as the package data
`logspace.index_templates`), named for a prefix, and their install.

Each file is one Elasticsearch resource with a `version`. `component-<name>.json` becomes
the component template `<prefix>-<name>`; `index-<name>.json` becomes the composable index
template `<prefix>` matching `<prefix>-*`, composed of all the component templates.
Installing is idempotent: a resource whose installed version equals ours is left alone.

The replicas of event indices are a setting (`LOGSPACE_INDEX_REPLICAS`), not part of the
files: `load` puts them into every component template that has index settings, and records
the setting in its `_meta.replicas`, so a changed setting is installed (`reconfigured`) and
then applied to the existing event indices as well (`apply_replicas`).

A template only shapes indices created after it. The event mappings carry their version in
`_meta.version`; an index of an older version is brought up to date in place
(`mapping_update`): the dynamic templates, and each existing property field mapped anew as
its family's template now maps it (e.g. `ignore_malformed`, which lets an index created
before version 2 take NaN), so the month's index need not wait for the next month.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch import NotFoundError as EsNotFound

from logspace.elastic.client import JSON, describe

__all__ = [
    "TEMPLATES_DIR",
    "Template",
    "apply_replicas",
    "index_version",
    "install",
    "installed_version",
    "load",
    "mapping_update",
    "mappings_version",
    "outdated",
    "replica_settings",
    "upgrade_indices",
]

TEMPLATES_DIR: Traversable = files("logspace.index_templates")

Kind = Literal["component", "index"]


@dataclass(frozen=True)
class Template:
    kind: Kind
    name: str
    body: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.body["version"])

    @property
    def replicas(self) -> str | None:
        """The `LOGSPACE_INDEX_REPLICAS` this template was made for; None if it sets none."""
        value = self.body.get("_meta", {}).get("replicas")
        return None if value is None else str(value)


def replica_settings(replicas: str) -> dict[str, Any]:
    """The index settings of `LOGSPACE_INDEX_REPLICAS`: `auto` is `auto_expand_replicas: 0-1`
    (none on a single node, one wherever a second node exists), a number is that many replicas
    wherever the nodes are, a range `min-max` expands with the number of data nodes."""
    if replicas == "auto":
        return {"auto_expand_replicas": "0-1"}
    if replicas.isdigit():
        return {"auto_expand_replicas": "false", "number_of_replicas": int(replicas)}
    return {"auto_expand_replicas": replicas}


def load(
    prefix: str, directory: Traversable = TEMPLATES_DIR, *, replicas: str = "auto"
) -> list[Template]:
    """The templates for one index prefix, component templates first (the order to install),
    with `replicas` (a `LOGSPACE_INDEX_REPLICAS` value) in the index settings."""
    components = []
    for path in _named(directory, "component-"):
        body = orjson.loads(path.read_bytes())
        index_settings = body.get("template", {}).get("settings", {}).get("index")
        if index_settings is not None:
            index_settings.update(replica_settings(replicas))
            body["_meta"]["replicas"] = replicas
        name = path.name.removeprefix("component-").removesuffix(".json")
        components.append(Template("component", f"{prefix}-{name}", body))
    indices = []
    for path in _named(directory, "index-"):
        body = orjson.loads(path.read_bytes())
        body["index_patterns"] = [f"{prefix}-*"]
        body["composed_of"] = [c.name for c in components]
        indices.append(Template("index", prefix, body))
    if len(indices) != 1:
        raise ValueError(f"{directory} must hold exactly one index-*.json, found {len(indices)}")
    return [*components, *indices]


def _named(directory: Traversable, start: str) -> list[Traversable]:
    return sorted(
        (p for p in directory.iterdir() if p.name.startswith(start) and p.name.endswith(".json")),
        key=lambda p: p.name,
    )


async def _installed(client: AsyncElasticsearch, template: Template) -> Template | None:
    """The template of this kind and name in Elasticsearch; None if missing."""
    try:
        response = await client.perform_request(
            "GET", f"/_{template.kind}_template/{template.name}", headers=JSON
        )
    except EsNotFound:
        return None
    (entry,) = response.body[f"{template.kind}_templates"]
    return Template(template.kind, template.name, entry[f"{template.kind}_template"])


async def installed_version(client: AsyncElasticsearch, template: Template) -> int | None:
    """The version of the template of this kind and name in Elasticsearch; None if missing."""
    installed = await _installed(client, template)
    version = None if installed is None else installed.body.get("version")
    return None if version is None else int(version)


async def install(client: AsyncElasticsearch, templates: list[Template]) -> list[str]:
    """Install what is missing, of another version or made for other replicas; one line per
    template saying what happened. When the template with the replicas was replaced, the
    existing event indices get them too (one more line)."""
    report = []
    replicas = None
    for template in templates:
        installed = await _installed(client, template)
        version = None if installed is None else installed.body.get("version")
        if installed is None or version is None:
            outcome = "installed"
        elif int(version) != template.version:
            outcome = f"updated {version} -> {template.version}"
        elif installed.replicas != template.replicas:
            outcome = f"reconfigured (replicas {installed.replicas} -> {template.replicas})"
        else:
            outcome = "unchanged"
        if outcome != "unchanged":
            await client.perform_request(
                "PUT",
                f"/_{template.kind}_template/{template.name}",
                headers=JSON,
                body=template.body,
            )
            if template.replicas is not None and outcome != "installed":
                replicas = template.replicas
        report.append(f"{template.kind} template {template.name}: {outcome}")
    if replicas is not None:
        (patterns,) = [t.body["index_patterns"] for t in templates if t.kind == "index"]
        report.append(await apply_replicas(client, ",".join(patterns), replicas))
    return report


async def apply_replicas(client: AsyncElasticsearch, pattern: str, replicas: str) -> str:
    """Give every open index matching `pattern` (the event indices) the replicas of
    `replicas`: a template only shapes new indices. One report line."""
    try:
        await client.perform_request(
            "PUT",
            f"/{pattern}/_settings",
            params={"allow_no_indices": "true", "expand_wildcards": "open"},
            headers=JSON,
            body={"index": replica_settings(replicas)},
        )
    except (ApiError, TransportError) as error:
        return f"event indices: replicas not set to {replicas} ({describe(error)})"
    return f"event indices: replicas set to {replicas}"


def outdated(templates: list[Template], installed: list[int | None]) -> list[str]:
    """The templates that are missing or older than ours, given their installed versions.

    A newer one is fine: a newer HQ may have installed it during a rolling upgrade."""
    problems = []
    for template, version in zip(templates, installed, strict=True):
        if version is None:
            problems.append(f"{template.kind} template {template.name} is missing")
        elif version < template.version:
            problems.append(
                f"{template.kind} template {template.name} is at version {version}, "
                f"HQ needs {template.version}"
            )
    return problems


def _mappings(templates: list[Template]) -> dict[str, Any]:
    (mappings,) = [
        t.body["template"]["mappings"]
        for t in templates
        if t.kind == "component" and "mappings" in t.body["template"]
    ]
    return dict(mappings)


def mappings_version(templates: list[Template]) -> int:
    """The version of the event mappings, as each index created from them records it."""
    return int(_mappings(templates)["_meta"]["version"])


def index_version(mapping: dict[str, Any]) -> int:
    """The version of an index's mappings; indices of version 1 recorded none."""
    return int((mapping.get("_meta") or {}).get("version", 1))


def mapping_update(templates: list[Template], mapping: dict[str, Any]) -> dict[str, Any]:
    """The `PUT _mapping` body that brings an index with `mapping` (as `GET _mapping` gives
    it) up to our event mappings: their version and dynamic templates, and every existing
    property field whose mapping differs from what its family's template gives now."""
    ours = _mappings(templates)
    by_family = {
        entry["path_match"].removesuffix(".*"): entry["mapping"]
        for template in ours["dynamic_templates"]
        for entry in template.values()
    }
    properties: dict[str, Any] = {}
    existing = mapping.get("properties") or {}
    for family, field_mapping in by_family.items():
        fields = (existing.get(family) or {}).get("properties") or {}
        changed = {name: field_mapping for name, now in fields.items() if now != field_mapping}
        if changed:
            properties[family] = {**ours["properties"][family], "properties": changed}
    update: dict[str, Any] = {
        "_meta": ours["_meta"],
        "dynamic_templates": ours["dynamic_templates"],
    }
    if properties:
        update["properties"] = properties
    return update


async def upgrade_indices(
    client: AsyncElasticsearch, prefix: str, templates: list[Template]
) -> list[str]:
    """Bring every open event index under `prefix` whose mappings are older than ours up to
    date (`mapping_update`); one report line per index. An index that cannot be updated is
    reported and left as it is."""
    version = mappings_version(templates)
    try:
        response = await client.perform_request(
            "GET",
            f"/{prefix}-*/_mapping",
            # `dynamic` is in every event index: each one is listed, with _meta or not.
            params={"filter_path": "*.mappings._meta,*.mappings.dynamic"},
            headers=JSON,
        )
    except (ApiError, TransportError) as error:
        return [f"event indices: could not check their mappings ({describe(error)})"]
    report = []
    for index, entry in sorted(dict(response.body or {}).items()):
        old = index_version(entry.get("mappings") or {})
        if old >= version:
            continue
        try:
            current = await client.perform_request("GET", f"/{index}/_mapping", headers=JSON)
            update = mapping_update(templates, current.body[index]["mappings"])
            await client.perform_request("PUT", f"/{index}/_mapping", headers=JSON, body=update)
        except (ApiError, TransportError) as error:
            report.append(f"index {index}: mappings not updated from {old}: {describe(error)}")
        else:
            report.append(f"index {index}: mappings updated {old} -> {version}")
    return report
