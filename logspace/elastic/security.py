"""Elasticsearch security for Logspace: HQ's own role, and each space's analysts.

HQ's role is data, `index_templates/role-hq.json` (shipped as `logspace.index_templates`),
with `{prefix}` and `{control_index}` filled in; `docker/es-users.sh` reads the same file.
A space's access (`spaces.analysts.SpaceAccess`) is a role reading only its indices, given to
native users or copied into API keys. Every function reports what it did in lines such as
`role logspace-events-alpha-reader: created`, and writes only what differs.

These calls need an administrator (`manage_security`), never HQ's own user.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from typing import Any

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch import NotFoundError as EsNotFound

from logspace.elastic.client import JSON, describe
from logspace.elastic.templates import TEMPLATES_DIR
from logspace.spaces.analysts import (
    SpaceAccess,
    role_differs,
    user_with_space,
    user_without_space,
)

__all__ = [
    "HQ_ROLE_FILE",
    "NewKey",
    "SecurityError",
    "add_api_key",
    "add_user",
    "grant",
    "hq_role",
    "put_role",
    "revoke",
    "show",
]

HQ_ROLE_FILE: Traversable = TEMPLATES_DIR / "role-hq.json"


class SecurityError(Exception):
    """Elasticsearch refused or could not be reached; the message says what and why."""


_REFUSED = object()  # `_call`: a 404 is a refusal like any other


def hq_role(prefix: str, control_index: str, path: Traversable = HQ_ROLE_FILE) -> dict[str, Any]:
    """HQ's least-privilege role for an index prefix and a control index."""
    text = path.read_text().replace("{prefix}", prefix).replace("{control_index}", control_index)
    body: dict[str, Any] = orjson.loads(text)
    return body


async def _call(
    client: AsyncElasticsearch,
    what: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    missing: Any = _REFUSED,
) -> Any:
    """The answer's body; `missing` instead when Elasticsearch answers 404 and the caller
    gave one, else `SecurityError` for any refusal."""
    try:
        response = await client.perform_request(method, path, headers=JSON, body=body)
    except EsNotFound as error:
        if missing is not _REFUSED:
            return missing
        raise SecurityError(f"Could not {what}: {_explain(error)}") from error
    except (ApiError, TransportError) as error:
        raise SecurityError(f"Could not {what}: {_explain(error)}") from error
    return response.body


def _explain(error: Exception) -> str:
    if isinstance(error, ApiError) and isinstance(error.body, dict):
        reason = (error.body.get("error") or {}).get("reason")
        if reason:
            return f"Elasticsearch answered {error.status_code}: {reason}"
    return describe(error)


async def _found(client: AsyncElasticsearch, what: str, path: str) -> dict[str, Any] | None:
    body: dict[str, Any] | None = await _call(client, what, "GET", path, missing=None)
    return body


# -- roles ---------------------------------------------------------------------------


async def put_role(client: AsyncElasticsearch, name: str, body: dict[str, Any]) -> str:
    """Create or update a role: `created`, `updated` or `unchanged` (nothing written)."""
    found = await _found(client, f"read role {name}", f"/_security/role/{name}")
    installed = (found or {}).get(name)
    if installed is not None and not role_differs(body, installed):
        return "unchanged"
    await _call(client, f"write role {name}", "PUT", f"/_security/role/{name}", body)
    return "created" if installed is None else "updated"


async def _delete_role(client: AsyncElasticsearch, name: str) -> str:
    path = f"/_security/role/{name}"
    gone = await _call(client, f"delete role {name}", "DELETE", path, missing="absent")
    return "absent" if gone == "absent" else "deleted"


async def grant(client: AsyncElasticsearch, access: SpaceAccess) -> list[str]:
    """The space's reader role, created or brought up to date."""
    outcome = await put_role(client, access.reader_role, access.reader_role_body())
    return [f"role {access.reader_role}: {outcome}"]


# -- analysts: users and API keys ----------------------------------------------------


async def add_user(
    client: AsyncElasticsearch, access: SpaceAccess, name: str, password: str | None
) -> tuple[list[str], str | None]:
    """Native user `name` with the space's roles (the reader role made first). An existing
    user keeps its password unless `password` is given; a new one gets `password`, or a
    random one, returned (Elasticsearch never shows it again)."""
    lines = await grant(client, access)
    existing = await _user(client, name)
    generated = None
    if existing is None and password is None:
        generated = password = secrets.token_urlsafe(18)
    body, outcome = user_with_space(name, existing, access, password)
    if body is not None:
        await _call(client, f"write user {name}", "PUT", f"/_security/user/{name}", body)
    lines.append(f"user {name}: {outcome}")
    return lines, generated


async def _user(client: AsyncElasticsearch, name: str) -> dict[str, Any] | None:
    found = await _found(client, f"read user {name}", f"/_security/user/{name}")
    user: dict[str, Any] | None = (found or {}).get(name)
    return user


@dataclass(frozen=True)
class NewKey:
    """An API key just made: its id, and the encoded key, which Elasticsearch shows once."""

    id: str
    encoded: str = field(repr=False)


async def add_api_key(
    client: AsyncElasticsearch,
    access: SpaceAccess,
    name: str,
    *,
    expiration_days: int | None = None,
    rotate: bool = False,
) -> tuple[list[str], NewKey]:
    """A new API key named `name` that reads only the space. The space's other valid keys of
    that name are invalidated with `rotate`, else listed as still valid."""
    lines = await grant(client, access)
    older = await _keys(client, access, name)
    made = await _call(
        client,
        f"create an API key for {name}",
        "POST",
        "/_security/api_key",
        access.api_key_body(name, expiration_days),
    )
    key = NewKey(made["id"], made["encoded"])
    lines.append(f"api key {name} ({key.id}): created")
    if rotate:
        lines += await _invalidate(client, older)
    else:
        lines += [f"api key {k['name']} ({k['id']}): still valid" for k in older]
    return lines, key


async def _keys(
    client: AsyncElasticsearch, access: SpaceAccess, name: str | None = None
) -> list[dict[str, Any]]:
    found = await _call(
        client, "list API keys", "POST", "/_security/_query/api_key", access.keys_query(name)
    )
    keys: list[dict[str, Any]] = found.get("api_keys", [])
    return keys


async def _invalidate(client: AsyncElasticsearch, keys: list[dict[str, Any]]) -> list[str]:
    if not keys:
        return []
    ids = [key["id"] for key in keys]
    await _call(client, "invalidate API keys", "DELETE", "/_security/api_key", {"ids": ids})
    return [f"api key {key['name']} ({key['id']}): invalidated" for key in keys]


async def _users(client: AsyncElasticsearch, access: SpaceAccess) -> list[dict[str, Any]]:
    found = await _call(
        client, "list users", "POST", "/_security/_query/user", access.users_query()
    )
    users: list[dict[str, Any]] = found.get("users", [])
    return users


async def _take_space(client: AsyncElasticsearch, access: SpaceAccess, user: dict[str, Any]) -> str:
    name = user["username"]
    body, outcome = user_without_space(user, access)
    if outcome == "delete":
        await _call(client, f"delete user {name}", "DELETE", f"/_security/user/{name}")
        return f"user {name}: deleted (it had no other role)"
    if body is not None:
        await _call(client, f"write user {name}", "PUT", f"/_security/user/{name}", body)
        return f"user {name}: roles of space {access.space} removed"
    return f"user {name}: has no role of space {access.space}"


async def revoke(
    client: AsyncElasticsearch, access: SpaceAccess, name: str | None = None
) -> list[str]:
    """Take the space from analyst `name` (user and API keys of that name); without a name,
    from everyone: every user loses the space's roles (so that granting the space again gives
    nobody back their access), every key is invalidated, and both roles are deleted."""
    if name is not None:
        user = await _user(client, name)
        lines = (
            [f"user {name}: not found"]
            if user is None
            else [await _take_space(client, access, user)]
        )
        return lines + await _invalidate(client, await _keys(client, access, name))
    lines = [await _take_space(client, access, user) for user in await _users(client, access)]
    lines += await _invalidate(client, await _keys(client, access))
    for role in access.roles:
        lines.append(f"role {role}: {await _delete_role(client, role)}")
    return lines


async def show(client: AsyncElasticsearch, access: SpaceAccess) -> list[str]:
    """Who may read the space: its roles, the users holding them, its valid API keys."""
    lines = []
    for role in access.roles:
        found = await _found(client, f"read role {role}", f"/_security/role/{role}")
        lines.append(f"role {role}: {'present' if found else 'missing'}")
    for user in await _users(client, access):
        state = "" if user.get("enabled", True) else ", disabled"
        lines.append(f"user {user['username']}{state}")
    for key in await _keys(client, access):
        expires = f", expires {_instant(key['expiration'])}" if key.get("expiration") else ""
        lines.append(f"api key {key['name']} ({key['id']}){expires}")
    return lines


def _instant(epoch_millis: int) -> str:
    moment = datetime.fromtimestamp(epoch_millis / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
