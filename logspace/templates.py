"""Index templates: the JSON files in `index_templates/` (shipped as the package data
`logspace.index_templates`), named for a prefix, and their install.

Each file is one Elasticsearch resource with a `version`. `component-<name>.json` becomes
the component template `<prefix>-<name>`; `index-<name>.json` becomes the composable index
template `<prefix>` matching `<prefix>-*`, composed of all the component templates.
Installing is idempotent: a resource whose installed version equals ours is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from .store import Store

__all__ = ["TEMPLATES_DIR", "Template", "install", "load", "outdated"]

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


def load(prefix: str, directory: Traversable = TEMPLATES_DIR) -> list[Template]:
    """The templates for one index prefix, component templates first (the order to install)."""
    components = [
        Template(
            "component",
            f"{prefix}-{path.name.removeprefix('component-').removesuffix('.json')}",
            orjson.loads(path.read_bytes()),
        )
        for path in _named(directory, "component-")
    ]
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


async def install(store: Store, templates: list[Template]) -> list[str]:
    """Install what is missing or of another version; one line per template saying what happened."""
    report = []
    for template in templates:
        installed = await store.template_version(template.kind, template.name)
        if installed == template.version:
            outcome = "unchanged"
        else:
            await store.put_template(template.kind, template.name, template.body)
            outcome = (
                "installed" if installed is None else f"updated {installed} -> {template.version}"
            )
        report.append(f"{template.kind} template {template.name}: {outcome}")
    return report


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
