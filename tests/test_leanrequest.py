"""`lean_request` reads a small `PUT /events` exactly as httptools and uvicorn's callbacks
would, or declines. Held to httptools itself (`requestdifferential.check`) over many requests,
most of them slightly wrong."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from logspace.leanrequest import AVAILABLE, lean_request

from .requestdifferential import LIMIT, check

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="the C extension is not built")

BODY = b'[{"id":"e-1","type":"t","system":"s","timestamp":"2026-12-01T00:00:00Z"}]'


def request(
    body: bytes = BODY,
    *,
    start: bytes = b"PUT /events HTTP/1.1",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    if headers is None:
        headers = [(b"Host", b"hq:4567"), (b"Content-Length", str(len(body)).encode())]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return start + b"\r\n" + head + b"\r\n" + body


@pytest.mark.parametrize(
    "data",
    [
        request(),
        request(start=b"PUT /api/events HTTP/1.1"),
        request(b""),
        # As wrk, httpx and the original Java agents send it.
        request(
            headers=[
                (b"Host", b"127.0.0.1:4567"),
                (b"Content-Type", b"application/json"),
                (b"logspace.space-token", b"development"),
                (b"Content-Length", str(len(BODY)).encode()),
            ]
        ),
        request(
            headers=[
                (b"host", b"hq"),
                (b"accept", b"*/*"),
                (b"accept-encoding", b"gzip, deflate"),
                (b"connection", b"keep-alive"),
                (b"user-agent", b"python-httpx/0.28.1"),
                (b"logspace.space-token", b"development"),
                (b"content-length", str(len(BODY)).encode()),
                (b"x-request-id", b"4bf92f3577b34da6a3ce929d0e0e4736"),
            ]
        ),
        request(
            headers=[
                (b"Content-Length", str(len(BODY)).encode()),
                (b"Content-Type", b"application/json; charset=UTF-8"),
                (b"Host", b"hq:4567"),
                (b"Connection", b"Keep-Alive"),
                (b"User-Agent", b"Apache-HttpClient/4.5.13 (Java/1.8.0_292)"),
                (b"logspace.space-token", b"development"),
            ]
        ),
    ],
)
def test_the_usual_requests_are_read_at_once_as_httptools_reads_them(data: bytes) -> None:
    assert check(data)


@pytest.mark.parametrize(
    "data",
    [
        request(start=b"POST /events HTTP/1.1"),
        request(start=b"PUT /events HTTP/1.0"),
        request(start=b"PUT /events/ HTTP/1.1"),
        request(start=b"PUT /events?x=1 HTTP/1.1"),
        request(BODY)[:-1],  # not all there yet
        request() + request(),  # two requests in one read
        request(headers=[(b"Host", b"hq")]),  # no Content-Length
        request(b"x" * (LIMIT + 1)),
        request(headers=[(b"Content-Length", b"1"), (b"Content-Length", b"1")], body=b"x"),
        request(headers=[(b"Transfer-Encoding", b"chunked")], body=b"1\r\nx\r\n0\r\n\r\n"),
        request(headers=[(b"Content-Length", b"0"), (b"Expect", b"100-continue")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"Connection", b"close")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"Connection", b"Upgrade")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"Upgrade", b"websocket")], body=b""),
        request(headers=[(b"Content-Length", b"+0")], body=b""),
        request().replace(b"\r\n", b"\n"),
        request(headers=[(b"Content-Length", b"0"), (b"X-Folded", b"a\r\n b")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"X-Tab", b"a\tb")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"X-Latin", "é".encode())], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"X-Empty", b"")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"X-Trailing", b"a ")], body=b""),
        request(headers=[(b"Content-Length", b"0"), (b"Bad Name", b"a")], body=b""),
    ],
)
def test_anything_unusual_is_left_to_httptools(data: bytes) -> None:
    assert lean_request(data, LIMIT) is None


_NAMES = [b"Host", b"Content-Type", b"logspace.space-token", b"X-Request-Id", b"Accept"]
_SPECIAL = [b"Connection", b"Transfer-Encoding", b"Expect", b"Upgrade", b"Proxy-Connection"]
_VALUES = [b"keep-alive", b"close", b"chunked", b"100-continue", b"a b", b"0", b"websocket"]
_NOISE = [b" ", b"\t", b"\r", b"\n", b"\x00", b"\x7f", b"\xe9", b":", b",", b'"', b"0", b"+"]


def _mutated(rng: random.Random) -> bytes:
    body = rng.choice([BODY, b"", b"[]", BODY * 3])
    headers = [(rng.choice(_NAMES), b"v%d" % rng.randrange(100)) for _ in range(rng.randrange(4))]
    if rng.random() < 0.3:
        headers.append((rng.choice(_SPECIAL), rng.choice(_VALUES)))
    length = str(len(body)).encode()
    if rng.random() < 0.2:
        length = rng.choice([b"0" + length, length + b" ", b" " + length, b"-1", b"1e3", b""])
    headers.insert(rng.randrange(len(headers) + 1), (b"Content-Length", length))
    if rng.random() < 0.1:
        headers.append((b"Content-Length", length))
    headers = [
        (bytes(rng.choice([c, ord(chr(c).swapcase())]) for c in name), value)
        for name, value in headers
    ]
    start = rng.choice(
        [b"PUT /events HTTP/1.1", b"PUT /api/events HTTP/1.1", b"PUT /events HTTP/1.0"]
    )
    data = bytearray(request(body, start=start, headers=headers))
    for _ in range(rng.choice([0, 0, 1, 2])):  # a stray byte anywhere, or one fewer
        at = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[at : at + 1] = rng.choice(_NOISE)
        else:
            del data[at]
    if rng.random() < 0.05:
        data += request()
    return bytes(data)


def test_whatever_it_reads_httptools_reads_alike() -> None:
    rng = random.Random(20261201)  # noqa: S311 - a repeatable sequence, not a secret
    taken = 0
    for _ in range(20000):
        taken += check(_mutated(rng))
    # Most mutations leave a request it should take; none of the checks above is idle.
    assert 3000 < taken < 20000


SEEDS = sorted((Path(__file__).resolve().parents[1] / "fuzz" / "requests").iterdir())


@pytest.mark.parametrize("path", SEEDS, ids=[path.name for path in SEEDS])
def test_each_seed_of_the_fuzz_corpus_and_each_cut_of_it_is_read_alike(path: Path) -> None:
    data = path.read_bytes()
    assert check(data)  # the seeds are requests it takes
    for end in range(len(data)):
        assert not check(data[:end])  # no part of one is a whole request
