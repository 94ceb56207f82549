"""Space tokens: every configured token finds its own grant, however many there are; anything
else is refused with the contract's 403 errors."""

from __future__ import annotations

import pytest

from logspace.errors import InvalidSpaceToken, MissingSpaceToken
from logspace.spaces.grants import Grant, SpaceTokens

# A fleet of teams, a space each: a reader and a writer token per space.
GRANTS = {
    **{f"writer-{n:04d}": Grant(f"team{n:04d}", read=False) for n in range(1000)},
    **{f"reader-{n:04d}": Grant(f"team{n:04d}", write=False) for n in range(1000)},
}


def test_each_of_two_thousand_tokens_gets_its_own_grant() -> None:
    tokens = SpaceTokens(GRANTS)
    assert len(tokens) == 2000
    for token, grant in GRANTS.items():
        assert tokens.grant_for(token) is grant


@pytest.mark.parametrize(
    "presented",
    [
        "writer-1000",  # one past the configured ones
        "writer-000",  # a prefix of a configured token
        "writer-00000",  # a configured token and more
        "Writer-0000",  # case matters
        "writer-0000 ",  # so does whitespace
        "\udcff",  # not UTF-8: still an unknown token, not a crash
    ],
)
def test_a_token_not_configured_is_refused(presented: str) -> None:
    with pytest.raises(InvalidSpaceToken):
        SpaceTokens(GRANTS).grant_for(presented)


@pytest.mark.parametrize("presented", [None, ""])
def test_no_token_is_refused_as_missing(presented: str | None) -> None:
    with pytest.raises(MissingSpaceToken):
        SpaceTokens(GRANTS).grant_for(presented)


def test_no_tokens_configured_refuses_every_token() -> None:
    with pytest.raises(InvalidSpaceToken):
        SpaceTokens({}).grant_for("development")
