"""A request body read whole (`read_whole`, the way of a body the server already holds) is
held to the same rules as one read as it arrives (`read_body`): the same bytes, the same
reservation, the same refusals."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest

from logspace.body import Admission, Reservation, read_body, read_whole
from logspace.errors import LogspaceError, RequestTooLarge

pytestmark = pytest.mark.anyio

LIMIT = 1000
PLAIN = b'[{"type":"t"}]' * 10  # 140 bytes


async def _arriving(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 64):
        yield body[start : start + 64]


def _whole(body: bytes, headers: dict[str, str]) -> tuple[object, int | None]:
    reservation = Reservation(Admission(10_000))
    try:
        return read_whole(body, headers, LIMIT, reservation), reservation.size
    except LogspaceError as error:
        return type(error), None


async def _as_it_arrives(body: bytes, headers: dict[str, str]) -> tuple[object, int | None]:
    reservation = Reservation(Admission(10_000))
    try:
        read = await read_body(_arriving(body), headers, LIMIT, reservation, 30.0)
    except LogspaceError as error:
        return type(error), None  # what pieces took before it is the request's to release
    return read, reservation.size


CASES = {
    "plain": (PLAIN, {}),
    "plain, declared": (PLAIN, {"content-length": str(len(PLAIN))}),
    "identity": (PLAIN, {"content-encoding": "identity"}),
    "plain, too large": (b"x" * (LIMIT + 1), {}),
    "declared too large": (PLAIN, {"content-length": str(LIMIT + 1)}),
    "gzip": (gzip.compress(PLAIN), {"content-encoding": "gzip"}),
    "gzip, too large unpacked": (gzip.compress(b"x" * (LIMIT + 1)), {"content-encoding": "gzip"}),
    "gzip, cut short": (gzip.compress(PLAIN)[:-6], {"content-encoding": "gzip"}),
    "unknown encoding": (PLAIN, {"content-encoding": "br"}),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_body_read_whole_is_read_as_if_it_arrived_in_pieces(case: str) -> None:
    body, headers = CASES[case]
    assert _whole(body, headers) == await _as_it_arrives(body, headers)


def test_a_plain_body_read_whole_is_taken_as_it_is_and_reserved() -> None:
    admission = Admission(10_000)
    reservation = Reservation(admission)
    assert read_whole(PLAIN, {}, LIMIT, reservation) is PLAIN
    assert admission.in_flight == reservation.size == len(PLAIN)


def test_a_plain_body_over_the_limit_reserves_nothing() -> None:
    admission = Admission(10_000)
    with pytest.raises(RequestTooLarge):
        read_whole(b"x" * (LIMIT + 1), {}, LIMIT, Reservation(admission))
    assert admission.in_flight == 0
