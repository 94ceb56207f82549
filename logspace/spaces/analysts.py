"""Who may read a space outside HQ: its analysts in Elasticsearch and Kibana. Pure.

HQ keeps spaces apart on its own API by token. Analysts query Elasticsearch (through Kibana
or directly), where the boundary is Elasticsearch's own security: for each space a role that
reads only the space's indices, `<prefix>-<space>-*`. Space names have no `-`, so that
pattern never matches another space's indices. An analyst is a native user holding the
space's roles, or an API key whose role descriptor is a copy of the space's role.

Everything here is named after the index prefix and the space, so two HQs with different
prefixes on one cluster do not meet, and a revoked space can be granted again cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MANAGED", "SpaceAccess", "role_differs", "user_with_space", "user_without_space"]

# Metadata on users this module created: only those are deleted when their last space goes.
MANAGED = "logspace"
# Reading events, and what Kibana needs to build a data view (field caps, resolving indices).
READER_PRIVILEGES = ("read", "view_index_metadata")


@dataclass(frozen=True)
class SpaceAccess:
    """The names and bodies of one space's analyst access."""

    prefix: str
    space: str

    @property
    def index_pattern(self) -> str:
        return f"{self.prefix}-{self.space}-*"

    @property
    def reader_role(self) -> str:
        """The Elasticsearch role that reads the space's indices, and nothing else."""
        return f"{self.prefix}-{self.space}-reader"

    @property
    def kibana_role(self) -> str:
        """The Kibana role (made through Kibana's role API) for the space's Kibana space."""
        return f"{self.prefix}-{self.space}-kibana"

    @property
    def kibana_space(self) -> str:
        """The Kibana space id; Kibana allows only `a-z 0-9 _ -` in it, so `.` becomes `_`."""
        return f"{self.prefix.replace('.', '_')}-{self.space}"

    @property
    def roles(self) -> tuple[str, str]:
        """The roles an analyst user of the space holds."""
        return (self.reader_role, self.kibana_role)

    @property
    def metadata(self) -> dict[str, Any]:
        return {MANAGED: {"prefix": self.prefix, "space": self.space}}

    def reader_role_body(self) -> dict[str, Any]:
        """`PUT /_security/role/<reader_role>`: plain index privileges (no document- or
        field-level security, which needs a paid licence)."""
        return {
            "description": f"Reads the events of Logspace space {self.space} "
            f"({self.index_pattern}) and nothing else.",
            "cluster": [],
            "indices": [{"names": [self.index_pattern], "privileges": list(READER_PRIVILEGES)}],
            "metadata": self.metadata,
        }

    def api_key_body(self, name: str, expiration_days: int | None) -> dict[str, Any]:
        """`POST /_security/api_key`: a key named `name` limited to the reader role. Made by
        an administrator, whose own privileges the descriptor narrows to exactly these."""
        role = self.reader_role_body()
        body: dict[str, Any] = {
            "name": name,
            "role_descriptors": {
                self.reader_role: {"cluster": role["cluster"], "indices": role["indices"]}
            },
            "metadata": {MANAGED: {**self.metadata[MANAGED], "analyst": name}},
        }
        if expiration_days is not None:
            body["expiration"] = f"{expiration_days}d"
        return body

    def keys_query(self, name: str | None = None) -> dict[str, Any]:
        """`POST /_security/_query/api_key`: the space's valid keys (named `name`, if given)."""
        filters: list[dict[str, Any]] = [
            {"term": {f"metadata.{MANAGED}.prefix": self.prefix}},
            {"term": {f"metadata.{MANAGED}.space": self.space}},
            {"term": {"invalidated": False}},
        ]
        if name is not None:
            filters.append({"term": {"name": name}})
        return {"query": {"bool": {"filter": filters}}, "sort": ["creation"], "size": 1000}

    def users_query(self) -> dict[str, Any]:
        """`POST /_security/_query/user`: users holding either of the space's roles."""
        return {"query": {"terms": {"roles": list(self.roles)}}, "size": 1000}


def _index_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "names": list(entry.get("names", [])),
        "privileges": list(entry.get("privileges", [])),
        "allow_restricted_indices": bool(entry.get("allow_restricted_indices", False)),
        "field_security": entry.get("field_security"),
        "query": entry.get("query"),
    }


def _role_shape(body: dict[str, Any]) -> dict[str, Any]:
    """A role with Elasticsearch's defaults filled in, as `GET /_security/role` gives it."""
    return {
        "description": body.get("description"),
        "cluster": list(body.get("cluster", [])),
        "indices": [_index_entry(entry) for entry in body.get("indices", [])],
        "applications": list(body.get("applications", [])),
        "run_as": list(body.get("run_as", [])),
        "metadata": dict(body.get("metadata", {})),
    }


def role_differs(wanted: dict[str, Any], installed: dict[str, Any]) -> bool:
    """Whether the installed role (as `GET /_security/role/<name>` gives it) is not the one
    we would write."""
    return _role_shape(wanted) != _role_shape(installed)


def user_with_space(
    name: str, existing: dict[str, Any] | None, access: SpaceAccess, password: str | None
) -> tuple[dict[str, Any] | None, str]:
    """The `PUT /_security/user/<name>` body that gives `name` the space's roles, and the
    outcome: `created`, `updated` or `unchanged` (then no body). An existing user keeps its
    other roles, names and metadata, and its password unless a new one is given."""
    if existing is None:
        if password is None:
            raise ValueError("a new user needs a password")
        body = {
            "password": password,
            "roles": list(access.roles),
            "full_name": f"Logspace analyst {name}",
            "metadata": {MANAGED: {"managed": True}},
        }
        return body, "created"
    roles = list(existing.get("roles", []))
    missing = [role for role in access.roles if role not in roles]
    if not missing and password is None:
        return None, "unchanged"
    body = _kept(existing) | {"roles": roles + missing}
    if password is not None:
        body["password"] = password
    return body, "updated"


def user_without_space(
    existing: dict[str, Any], access: SpaceAccess
) -> tuple[dict[str, Any] | None, str]:
    """What revoking the space does to a user: the new `PUT` body (None: nothing to write)
    and the outcome, `unchanged`, `updated` or `delete` (a user this module made, left with
    no role)."""
    roles = list(existing.get("roles", []))
    remaining = [role for role in roles if role not in access.roles]
    if remaining == roles:
        return None, "unchanged"
    managed = bool((existing.get("metadata") or {}).get(MANAGED, {}).get("managed"))
    if not remaining and managed:
        return None, "delete"
    return _kept(existing) | {"roles": remaining}, "updated"


def _kept(existing: dict[str, Any]) -> dict[str, Any]:
    """What a `PUT` of an existing user must repeat so that it is kept."""
    kept = {key: existing[key] for key in ("full_name", "email", "metadata") if existing.get(key)}
    if "enabled" in existing:
        kept["enabled"] = existing["enabled"]
    return kept
