"""Kibana: the saved objects in `kibana/` (shipped as the package data `logspace.saved_objects`)
and their import into a Kibana, into its default space or into a Logspace space's own.

`kibana/saved-objects.ndjson` holds a data view over the event indices, with `timestamp` as
its time field, the Lens visualisations of the overview dashboard and the dashboard itself,
each with a fixed id. Importing overwrites objects of the same id, so running it again
updates them in place. Only the data view's index pattern depends on the index prefix (and
the space); `load` fills it in. For a space, every id gets the Kibana space's id as a suffix
(references too), so no id is in two Kibana spaces: Kibana would give an imported object a new
id if its id were taken in another space, and a second import would no longer find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import httpx
import orjson

from logspace.ops import kibanaapi
from logspace.ops.kibanaapi import Kibana, KibanaError, ndjson
from logspace.settings import Settings
from logspace.spaces.analysts import SpaceAccess

__all__ = ["SAVED_OBJECTS", "KibanaError", "import_objects", "imported", "load", "ndjson"]

SAVED_OBJECTS: Traversable = files("logspace.saved_objects") / "saved-objects.ndjson"


def load(
    prefix: str, path: Traversable = SAVED_OBJECTS, space: SpaceAccess | None = None
) -> list[dict[str, Any]]:
    """The saved objects, with the data view over `<prefix>-*`, or over one space's indices
    (and ids of that space's own) when `space` is given."""
    objects = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for entry in objects:
        if entry["type"] == "index-pattern":
            attributes = entry["attributes"]
            attributes["title"] = f"{prefix}-*" if space is None else space.index_pattern
            if space is not None:
                attributes["name"] = f"{attributes['name']} ({space.space})"
    if space is not None:
        own = {entry["id"]: f"{entry['id']}-{space.kibana_space}" for entry in objects}
        for entry in objects:
            entry["id"] = own[entry["id"]]
            for reference in entry["references"]:
                reference["id"] = own.get(reference["id"], reference["id"])
    return objects


async def import_objects(
    url: str,
    objects: Sequence[dict[str, Any]],
    settings: Settings,
    *,
    wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[str]:
    """Import `objects` into the default space of the Kibana at `url`, overwriting; one report
    line per object. Waits up to `wait` seconds for a Kibana that is starting."""
    async with Kibana(url, settings, wait=wait, transport=transport) as kibana:
        response = await kibana.send(kibanaapi.import_objects(objects))
    return imported(response)


def imported(response: httpx.Response) -> list[str]:
    """Kibana's answer to an import, as one line per object; `KibanaError` unless every
    object was imported."""
    try:
        result = response.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise KibanaError(f"Kibana answered the import with {response.text[:500]!r}")
    lines = [
        f"{entry['type']} {entry['id']}: {'overwritten' if entry.get('overwrite') else 'created'}"
        + (f" (as {entry['destinationId']})" if entry.get("destinationId") else "")
        for entry in result.get("successResults", [])
    ]
    errors = result.get("errors") or []
    if not result.get("success") or errors:
        details = "; ".join(
            f"{e.get('type')} {e.get('id')}: {orjson.dumps(e.get('error')).decode()}"
            for e in errors
        )
        raise KibanaError(f"Kibana did not import every object: {details or result}")
    return lines
