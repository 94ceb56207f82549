"""Space tokens: which space a request may read or write. Pure.

A token grants one space, for writing, reading or both. It arrives in the
`logspace.space-token` header, or as `Authorization: Bearer <token>` for proxies that drop
header names with dots.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import AccessDenied, InvalidSpaceToken, MissingSpaceToken

__all__ = ["TOKEN_HEADER", "Access", "Grant", "SpaceTokens", "token_from_headers"]

TOKEN_HEADER = "logspace.space-token"  # noqa: S105 - a header name, not a secret

Access = Literal["read", "write"]


@dataclass(frozen=True)
class Grant:
    """What one token allows: a space, and whether it may read and write there."""

    space: str
    read: bool = True
    write: bool = True

    def allows(self, access: Access) -> bool:
        return self.read if access == "read" else self.write


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    token = headers.get(TOKEN_HEADER)
    if token:
        return token
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class SpaceTokens:
    """Maps tokens to grants, comparing in constant time.

    Every configured token is compared with the presented one, and the comparison is on
    fixed-length digests, so timing reveals neither which token matched nor its length.
    """

    def __init__(self, grants: Mapping[str, Grant]) -> None:
        self._entries = tuple((_digest(token), grant) for token, grant in grants.items())

    def __len__(self) -> int:
        return len(self._entries)

    def grant_for(self, token: str | None) -> Grant:
        """The grant of a token; raises `MissingSpaceToken` or `InvalidSpaceToken`."""
        if not token:
            raise MissingSpaceToken()
        presented = _digest(token)
        found: Grant | None = None
        for digest, grant in self._entries:
            if hmac.compare_digest(digest, presented):
                found = grant
        if found is None:
            raise InvalidSpaceToken(token)
        return found

    def space_for(self, headers: Mapping[str, str], access: Access) -> str:
        """The space a request may use for `access`, from its headers; raises a 403 error."""
        grant = self.grant_for(token_from_headers(headers))
        if not grant.allows(access):
            raise AccessDenied(
                f"This space-token may not {access} events of space '{grant.space}'.",
                {"space": grant.space, "access": access},
            )
        return grant.space
