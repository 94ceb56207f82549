"""The requests both lean ways of `PUT /events` are checked with (tests/test_lean_path.py
against the routed path, tests/test_protocol.py against uvicorn's own protocol): every kind
of answer, under settings with a small body limit."""

from __future__ import annotations

import gzip
from typing import Final

import orjson

from logspace.settings import Settings
from logspace.spaces.grants import Grant
from logspace.testing import make_event

SETTINGS: Final = Settings(
    space_tokens={"development": Grant("development"), "reader": Grant("development", write=False)},
    max_body_bytes=4096,
)
TOKEN: Final = {"logspace.space-token": "development"}
EVENTS: Final = orjson.dumps([make_event(), make_event(long_properties={"n": 1})])

# (case, path, body, headers)
CASES: Final = [
    ("stored", "/events", EVENTS, {**TOKEN, "x-request-id": "a-1"}),
    ("stored at the original agents' path", "/api/events", EVENTS, {**TOKEN, "x-request-id": "b"}),
    ("stored, gzipped", "/events", gzip.compress(EVENTS), {**TOKEN, "content-encoding": "gzip"}),
    ("no token", "/events", EVENTS, {"x-request-id": "c"}),
    ("unknown token", "/events", EVENTS, {"logspace.space-token": "nope", "x-request-id": "d"}),
    ("a token that may not write", "/events", EVENTS, {"logspace.space-token": "reader"}),
    ("not JSON", "/events", b"[{", {**TOKEN, "x-request-id": "e"}),
    ("an invalid event", "/events", b'[{"id": 1}]', {**TOKEN, "x-request-id": "f"}),
    ("too large", "/events", b"[" + b" " * 5000 + b"]", {**TOKEN, "x-request-id": "g"}),
    ("no body", "/events", b"", {**TOKEN, "x-request-id": "h"}),
    ("unknown encoding", "/events", EVENTS, {**TOKEN, "content-encoding": "br"}),
]
