"""A Kibana space per Logspace space: the space, its data view and dashboard, and the Kibana
role that lets the space's analysts into that space and no other.

The Kibana role grants Kibana privileges only; the events themselves are read with the
Elasticsearch role of `logspace spaces grant`, which Elasticsearch enforces whatever an
analyst does in Kibana (a data view over `<prefix>-*` still shows them their space's events
only). `logspace spaces analyst` gives a user both roles. Each step writes only what differs
and reports `created`, `updated` or `unchanged`.
"""

from __future__ import annotations

from typing import Any, Literal

from logspace.ops import kibanaapi
from logspace.ops.kibana import imported, load
from logspace.ops.kibanaapi import Kibana
from logspace.spaces.analysts import SpaceAccess

__all__ = [
    "AnalystAccess",
    "role_body",
    "role_differs",
    "setup_space",
    "space_body",
    "space_differs",
]

# Kibana's base privileges in a space: `read` lets analysts use Discover and the dashboards;
# `all` lets them also save their own searches, visualisations and dashboards there.
AnalystAccess = Literal["read", "all"]


def space_body(access: SpaceAccess) -> dict[str, Any]:
    """The Kibana space of a Logspace space, as `POST /api/spaces/space` takes it."""
    return {
        "id": access.kibana_space,
        "name": f"Logspace: {access.space}",
        "description": f"Events of Logspace space {access.space} ({access.index_pattern}).",
        "disabledFeatures": [],
    }


def space_differs(wanted: dict[str, Any], found: dict[str, Any]) -> bool:
    """Whether the space Kibana has differs in what we set (its name and description);
    features, colours and images an administrator chose are theirs."""
    return any(found.get(key) != wanted[key] for key in ("name", "description"))


def role_body(access: SpaceAccess, privilege: AnalystAccess) -> dict[str, Any]:
    """`PUT /api/security/role/<kibana_role>`: one Kibana space, no Elasticsearch privileges
    (those come with the reader role)."""
    return {
        "description": f"Kibana space {access.kibana_space} ({privilege}) for the analysts of "
        f"Logspace space {access.space}; the events come with role {access.reader_role}.",
        "metadata": access.metadata,
        "elasticsearch": {"cluster": [], "indices": [], "run_as": []},
        "kibana": [{"base": [privilege], "spaces": [access.kibana_space]}],
    }


def _role_shape(role: dict[str, Any]) -> dict[str, Any]:
    """A Kibana role as `GET /api/security/role/<name>` gives it, without what Kibana adds."""
    elasticsearch = role.get("elasticsearch") or {}
    return {
        "description": role.get("description"),
        "metadata": role.get("metadata") or {},
        "elasticsearch": {
            key: elasticsearch.get(key) or [] for key in ("cluster", "indices", "run_as")
        },
        "kibana": [
            {
                "base": sorted(entry.get("base") or []),
                "feature": entry.get("feature") or {},
                "spaces": sorted(entry.get("spaces") or []),
            }
            for entry in role.get("kibana") or []
        ],
    }


def role_differs(wanted: dict[str, Any], found: dict[str, Any]) -> bool:
    return _role_shape(wanted) != _role_shape(found)


async def setup_space(
    kibana: Kibana, access: SpaceAccess, privilege: AnalystAccess = "read"
) -> list[str]:
    """The space's Kibana space, its saved objects and its Kibana role; one line each (one
    per object for the import)."""
    wanted = space_body(access)
    found = await kibana.send(kibanaapi.get_space(access.kibana_space))
    if found.status_code == 404:
        await kibana.send(kibanaapi.create_space(wanted))
        outcome = "created"
    elif space_differs(wanted, found.json()):
        await kibana.send(kibanaapi.update_space(_updated(wanted, found.json())))
        outcome = "updated"
    else:
        outcome = "unchanged"
    lines = [f"kibana space {access.kibana_space}: {outcome}"]
    objects = load(access.prefix, space=access)
    answer = await kibana.send(kibanaapi.import_objects(objects, access.kibana_space))
    lines += imported(answer)
    role = role_body(access, privilege)
    found = await kibana.send(kibanaapi.get_role(access.kibana_role))
    if found.status_code == 200 and not role_differs(role, found.json()):
        outcome = "unchanged"
    else:
        await kibana.send(kibanaapi.put_role(access.kibana_role, role))
        outcome = "created" if found.status_code == 404 else "updated"
    lines.append(f"kibana role {access.kibana_role}: {outcome}")
    return lines


def _updated(wanted: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Our name and description; what an administrator chose (features turned off, avatar,
    solution view) stays, as far as the update takes it."""
    kept = {key: found[key] for key in _KEPT if found.get(key) is not None}
    return wanted | kept


_KEPT = ("disabledFeatures", "color", "initials", "imageUrl", "solution")
