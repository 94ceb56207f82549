"""What the agent does with each answer of HQ, and how long it waits. Pure."""

from __future__ import annotations

import random

import orjson
import pytest

from logspace.agent.delivery import RETRY_AFTER_CAP, backoff_delay, classify, retry_after


def body(type_: str, **parameters: object) -> bytes:
    return orjson.dumps({"type": type_, "message": "m", "parameters": parameters})


def errors(*indexes: int) -> list[dict[str, object]]:
    return [{"index": i, "id": f"e{i}", "path": f"$[{i}].x", "message": "bad"} for i in indexes]


@pytest.mark.parametrize(
    ("status", "content", "action"),
    [
        (202, b"", "delivered"),
        (200, b"", "hold"),
        (204, b"", "hold"),
        (400, body("INVALID_EVENTS", errors=errors(1)), "drop"),
        (400, body("INVALID_EVENTS"), "split"),
        (400, body("INVALID_JSON", line=1, column=1), "split"),
        (400, body("INVALID_BATCH", found="object"), "split"),
        (400, b"<html>", "split"),
        (401, b"", "hold"),
        (403, body("MISSING_SPACE_TOKEN"), "hold"),
        (403, body("INVALID_SPACE_TOKEN"), "hold"),
        (403, body("ACCESS_DENIED"), "hold"),
        (404, body("NOT_FOUND"), "hold"),
        (405, body("METHOD_NOT_ALLOWED"), "hold"),
        (408, body("REQUEST_TIMEOUT"), "retry"),
        (413, body("REQUEST_TOO_LARGE"), "split"),
        (415, body("UNSUPPORTED_CONTENT_ENCODING"), "uncompress"),
        (422, body("EVENTS_NOT_STORED", errors=errors(0)), "delivered"),
        (422, b"{}", "split"),
        (429, b"", "retry"),
        (500, body("INTERNAL_ERROR"), "retry"),
        (502, b"bad gateway", "retry"),
        (503, body("STORE_UNAVAILABLE"), "retry"),
        (504, b"", "retry"),
    ],
)
def test_every_answer_has_an_action(status: int, content: bytes, action: str) -> None:
    assert classify(status, {}, content, 3).action == action


def test_invalid_events_name_exactly_the_events_to_drop() -> None:
    content = body("INVALID_EVENTS", errors=[*errors(2, 0, 2), {"index": 9}, {"index": "1"}])

    outcome = classify(400, {}, content, 3)

    assert outcome.drops == {0: "bad at $[0].x", 2: "bad at $[2].x"}
    assert outcome.reason == "HTTP 400 INVALID_EVENTS: m"


def test_events_elasticsearch_refused_are_dropped_and_the_rest_is_delivered() -> None:
    content = body("EVENTS_NOT_STORED", errors=[{"index": 1, "reason": "closed"}])
    outcome = classify(422, {}, content, 2)
    assert (outcome.action, outcome.drops) == ("delivered", {1: "closed"})


def test_only_a_500_makes_a_batch_suspect() -> None:
    assert classify(500, {}, b"", 1).suspect
    assert not classify(503, {}, b"", 1).suspect


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    assert classify(503, {"retry-after": "7"}, b"", 1).retry_after == 7.0
    assert retry_after({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=40.0) == 60.0
    assert retry_after({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, now=40.0) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    assert retry_after({"retry-after": "999999"}) == RETRY_AFTER_CAP


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(4)  # noqa: S311 - jitter in a test, not a secret
    for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (500, 60.0)]:
        for _ in range(20):
            assert base / 2 <= backoff_delay(failures, 1.0, 60.0, rng.random) <= base
    assert backoff_delay(3, 1.0, 60.0, lambda: 0.0) == 2.0
    assert backoff_delay(3, 1.0, 60.0, lambda: 1.0) == 4.0
