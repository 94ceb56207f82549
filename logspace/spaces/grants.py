"""Space tokens: which space a request may read or write. Pure.

A token grants one space, for writing, reading or both. It arrives in the
`logspace.space-token` header, or as `Authorization: Bearer <token>` for proxies that drop
header names with dots.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from logspace.errors import AccessDenied, InvalidSpaceToken, MissingSpaceToken

__all__ = [
    "TOKEN_HEADER",
    "Access",
    "Grant",
    "SpaceTokens",
    "is_space_name",
    "parse_space_tokens",
    "token_digest",
    "token_from_headers",
]

TOKEN_HEADER = "logspace.space-token"  # noqa: S105 - a header name, not a secret

Access = Literal["read", "write"]

# Space names become part of index names, which Elasticsearch wants lower case; no '-'
# so that `<prefix>-<space>-*` never matches another space's indices.
_SPACE_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


def is_space_name(value: str) -> bool:
    return _SPACE_NAME.fullmatch(value) is not None


@dataclass(frozen=True)
class Grant:
    """What one token allows: a space, and whether it may read and write there."""

    space: str
    read: bool = True
    write: bool = True

    def allows(self, access: Access) -> bool:
        return self.read if access == "read" else self.write

    def require(self, access: Access) -> str:
        """The space, if this grant allows `access`; else a 403 `AccessDenied`."""
        if not self.allows(access):
            raise AccessDenied(
                f"This space-token may not {access} events of space '{self.space}'.",
                {"space": self.space, "access": access},
            )
        return self.space


def parse_space_tokens(name: str, value: str) -> dict[str, Grant]:
    """`space:token[:access],...` -> {token: grant}; access is `read-write` (the default),
    `write` or `read`. A space may have several tokens; a token has one space."""
    grants: dict[str, Grant] = {}
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) not in (2, 3) or not parts[1]:
            raise ValueError(
                f"{name}: {entry!r} is not a 'space:token' or 'space:token:access' entry"
            )
        space, token = parts[0], parts[1]
        access = parts[2] if len(parts) == 3 else "read-write"
        if not _SPACE_NAME.fullmatch(space):
            raise ValueError(
                f"{name}: space {space!r} is not a valid space name "
                "(lower-case letters, digits and '_', at most 64, starting with a letter or digit)"
            )
        if not token.isprintable() or not token.isascii():
            raise ValueError(f"{name}: the token of space {space!r} must be printable ASCII")
        if access not in ("read-write", "write", "read"):
            raise ValueError(
                f"{name}: access {access!r} of a token of space {space!r} is not one of "
                "read-write, write, read"
            )
        grant = Grant(space, read=access != "write", write=access != "read")
        other = grants.get(token)
        if other is not None and other != grant:
            raise ValueError(
                f"{name}: one token is configured twice, for space {other.space!r} and {space!r}"
            )
        grants[token] = grant
    return grants


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    token = headers.get(TOKEN_HEADER)
    if token:
        return token
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def token_digest(token: str) -> bytes:
    """A token's SHA-256 digest, the form it is compared in: a lookup or comparison by digest
    takes the same time whatever the token (any text, even one with lone surrogates)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class SpaceTokens:
    """Maps tokens to grants, looked up by the SHA-256 digest of the presented token.

    A lookup by digest takes the same time whichever token matched and however long the
    configured tokens are, and what its timing could tell about is the digest of a token the
    caller chose, which says nothing of the configured ones. It is one dict lookup however
    many tokens there are: HQ with a thousand spaces answers as fast as with one.
    """

    def __init__(self, grants: Mapping[str, Grant]) -> None:
        self._by_digest = {token_digest(token): grant for token, grant in grants.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def grant_for(self, token: str | None) -> Grant:
        """The grant of a token; raises `MissingSpaceToken` or `InvalidSpaceToken`."""
        if not token:
            raise MissingSpaceToken()
        found = self._by_digest.get(token_digest(token))
        if found is None:
            raise InvalidSpaceToken(token)
        return found

    def space_for(self, headers: Mapping[str, str], access: Access) -> str:
        """The space a request may use for `access`, from its headers; raises a 403 error."""
        return self.grant_for(token_from_headers(headers)).require(access)
