"""Space tokens: which space a request may write to. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from .errors import InvalidSpaceToken, MissingSpaceToken

__all__ = ["TOKEN_HEADER", "SpaceTokens"]

TOKEN_HEADER = "logspace.space-token"  # noqa: S105 - a header name, not a secret


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class SpaceTokens:
    """Maps tokens to spaces, comparing in constant time.

    Every configured token is compared with the presented one, and the comparison is on
    fixed-length digests, so timing reveals neither which token matched nor its length.
    """

    def __init__(self, spaces_by_token: Mapping[str, str]) -> None:
        self._entries = tuple((_digest(token), space) for token, space in spaces_by_token.items())

    def __len__(self) -> int:
        return len(self._entries)

    def space_for(self, token: str | None) -> str:
        """The space the token writes to; raises `MissingSpaceToken` or `InvalidSpaceToken`."""
        if not token:
            raise MissingSpaceToken()
        presented = _digest(token)
        found: str | None = None
        for digest, space in self._entries:
            if hmac.compare_digest(digest, presented):
                found = space
        if found is None:
            raise InvalidSpaceToken(token)
        return found
